//! Fuzzing the data readers (ARFF with its label XML, XC, TSV, CSV, JSON lines, fastText,
//! Parquet): mutations of the committed seed corpus (`seeds/`, one folder a case; the
//! Parquet cases are written by the `parquet` crate's writer here) go through each
//! reader for a bounded time. Every input must come back as rows or as an error naming
//! one of its files; none may panic or abort, and what a reader allocates must stay under
//! `2 x (64 x the case's bytes + 64 MiB)` (the readers' own bound, `check_dense`, with
//! room for a vector's doubling). Memory is counted by this binary's allocator
//! (`peak_alloc`), and the process's address space is limited so that a reader taking
//! what a file declares fails (an abort, the input left on disk) instead of the machine.
//!
//! `SWEEP_FUZZ_SECS` (seconds per target, default 3) and `SWEEP_FUZZ_SEED` run it longer
//! or elsewhere; inputs that fail are kept under the target directory's `fuzz-failures`.
//! This is a mutation fuzzer without coverage feedback: libFuzzer needs a nightly
//! compiler and sanitizers over a crate that links libtorch.

#[path = "../common/parquet_rows.rs"]
mod parquet_rows;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peak_alloc::PeakAlloc;
use sweep_file::{TextData, TextFormat};
use sweep_trainer::data::{read_mulan, read_xc, text, DataError, RawData, SplitMix64, DENSE_FLOOR};

/// The system allocator, counting the bytes held and their peak (reset per input).
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// This process's address space, at most (libtorch's libraries are mapped in it too).
const ADDRESS_SPACE: u64 = 12 << 30;

/// One case: its files by name, as bytes.
type Case = Vec<(String, Vec<u8>)>;

/// A reader under test: reads the case written in a folder.
type Reader = fn(&Path) -> Result<RawData, DataError>;

fn mulan(dir: &Path) -> Result<RawData, DataError> {
    read_mulan(&dir.join("train.arff"), &dir.join("test.arff"), &dir.join("labels.xml"))
}

fn extreme(dir: &Path) -> Result<RawData, DataError> {
    read_xc(&dir.join("train.txt"), &dir.join("test.txt"))
}

fn text_of(dir: &Path, format: TextFormat, ext: &str) -> Result<RawData, DataError> {
    let names = dir.join("labels.txt");
    let (train, test) = (dir.join(format!("train.{ext}")), dir.join(format!("test.{ext}")));
    let cfg = TextData { format: Some(format), ..Default::default() };
    let files = text::TextFiles {
        train: &train,
        val: None,
        test: &test,
        label_names: names.exists().then_some(names.as_path()),
    };
    text::read_text(&cfg, files)
}

fn tsv(dir: &Path) -> Result<RawData, DataError> {
    text_of(dir, TextFormat::Tsv, "tsv")
}
fn csv(dir: &Path) -> Result<RawData, DataError> {
    text_of(dir, TextFormat::Csv, "csv")
}
fn jsonl(dir: &Path) -> Result<RawData, DataError> {
    text_of(dir, TextFormat::Jsonl, "jsonl")
}
fn fasttext(dir: &Path) -> Result<RawData, DataError> {
    text_of(dir, TextFormat::Fasttext, "txt")
}
fn parquet(dir: &Path) -> Result<RawData, DataError> {
    text_of(dir, TextFormat::Parquet, "parquet")
}

fn seeds(folder: &str) -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        if name == folder || name.starts_with(&format!("{folder}-")) {
            let mut case: Case = std::fs::read_dir(&dir)
                .unwrap()
                .map(|f| {
                    let f = f.unwrap().path();
                    (f.file_name().unwrap().to_str().unwrap().to_string(), std::fs::read(&f).unwrap())
                })
                .collect();
            case.sort();
            cases.push(case);
        }
    }
    assert!(!cases.is_empty(), "no seeds for {folder} under {}", root.display());
    cases.sort();
    cases
}

/// Parquet cases from the writer: a string column and a list of strings, then integer
/// ids with a names file.
fn parquet_seeds() -> Vec<Case> {
    let rows = [("good words", vec!["joy", "anger"]), ("bad", vec![]), ("\"quoted, text\" 😀", vec!["joy"])];
    let test = [("fine", vec!["anger"])];
    let ids = [("love it", vec!["0", "2"]), ("hm", vec!["1"])];
    vec![
        vec![("test.parquet".into(), parquet_rows::bytes(&test)), ("train.parquet".into(), parquet_rows::bytes(&rows))],
        vec![
            ("labels.txt".into(), b"joy\nanger\nneutral\n".to_vec()),
            ("test.parquet".into(), parquet_rows::bytes(&ids[..1])),
            ("train.parquet".into(), parquet_rows::bytes(&ids)),
        ],
    ]
}

/// Tokens that readers parse: sizes, separators, markers, bad UTF-8.
const TOKENS: &[&[u8]] = &[
    b"4294967296",
    b"18446744073709551616",
    b"999999999999",
    b"2147483647",
    b"-1",
    b"0",
    b"1e308",
    b"NaN",
    b"inf",
    b"?",
    b"@attribute x numeric\n",
    b"@attribute y {0,1}\n",
    b"@data\n",
    b"{99999999 1}",
    b"{0 1,0 1}",
    b"__label__",
    b"\"",
    b"'",
    b"\\",
    b"\n",
    b"\r\n",
    b"\t",
    b",",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"<label name=\"x\"/>",
    b"&amp;",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    b"\0",
];

/// Mutations stay under this size (a case's file).
const MAX_FILE: usize = 64 << 10;

struct Mutator {
    rng: SplitMix64,
}

impl Mutator {
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    /// One to four stacked changes to `data`; `other` is another seed file to splice from.
    fn mutate(&mut self, data: &mut Vec<u8>, other: &[u8]) {
        for _ in 0..1 + self.below(4) {
            self.once(data, other);
            data.truncate(MAX_FILE);
        }
    }

    fn once(&mut self, data: &mut Vec<u8>, other: &[u8]) {
        let at = self.below(data.len() + 1);
        match self.below(9) {
            0 if at < data.len() => data[at] ^= 1 << self.below(8),
            1 if at < data.len() => data[at] = *TOKENS[self.below(TOKENS.len())].first().unwrap_or(&b'0'),
            2 => {
                let end = (at + 1 + self.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let end = (at + 1 + self.below(64)).min(data.len());
                let chunk = data[at.min(end)..end].to_vec();
                let to = self.below(data.len() + 1);
                data.splice(to..to, chunk);
            }
            4 => {
                let token = TOKENS[self.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            5 => self.grow_a_number(data, at),
            6 if !other.is_empty() => {
                let from = self.below(other.len());
                let end = (from + 1 + self.below(128)).min(other.len());
                data.splice(at..at, other[from..end].iter().copied());
            }
            7 => data.truncate(at),
            _ => self.repeat_a_line(data, at),
        }
    }

    /// The run of digits at or after `at` becomes a huge one.
    fn grow_a_number(&mut self, data: &mut Vec<u8>, at: usize) {
        let Some(start) = data[at..].iter().position(u8::is_ascii_digit).map(|p| p + at) else { return };
        let end = data[start..].iter().position(|b| !b.is_ascii_digit()).map_or(data.len(), |p| p + start);
        let huge: &[u8] = [&b"4294967296"[..], b"99999999999", b"18446744073709551615", b"65536"][self.below(4)];
        data.splice(start..end, huge.iter().copied());
    }

    /// The line holding `at` repeated up to 500 times (many rows from few bytes).
    fn repeat_a_line(&mut self, data: &mut Vec<u8>, at: usize) {
        let start = data[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let end = data[at..].iter().position(|&b| b == b'\n').map_or(data.len(), |p| p + at + 1);
        let line = data[start..end].to_vec();
        for _ in 0..1 + self.below(500) {
            if data.len() + line.len() > MAX_FILE {
                break;
            }
            data.splice(end..end, line.iter().copied());
        }
    }
}

/// Runs below this number are the seeds themselves (which must read).
const SEEDS_MAX: usize = 1000;

/// What one target found.
#[derive(Default)]
struct Found {
    runs: usize,
    read: usize,
    /// The most bytes one input made the reader hold at once, and that input's size.
    peak: (usize, usize),
    failures: Vec<String>,
}

fn write_case(dir: &Path, case: &Case) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in case {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn keep_failure(name: &str, run: usize, case: &Case, why: String) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures").join(format!("{name}-{run}"));
    write_case(&dir, case);
    format!("{name}, run {run} ({}): {why}", dir.display())
}

/// Runs one case through a reader: counted, caught, checked.
fn run_one(name: &str, reader: Reader, dir: &Path, case: &Case, run: usize, found: &mut Found) {
    write_case(dir, case);
    let bytes: usize = case.iter().map(|(_, b)| b.len()).sum();
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let out = std::panic::catch_unwind(|| reader(dir));
    let held = ALLOC.peak_usage().saturating_sub(base);
    found.runs += 1;
    if held > found.peak.0 {
        found.peak = (held, bytes);
    }
    let bound = 2 * (64 * bytes + DENSE_FLOOR as usize);
    let why = match out {
        Err(_) => Some("the reader panicked".to_string()),
        Ok(_) if held > bound => Some(format!("held {held} bytes for {bytes} bytes of input (bound {bound})")),
        Ok(Ok(_)) => {
            found.read += 1;
            None
        }
        Ok(Err(e)) if !e.0.contains(dir.to_str().unwrap()) => Some(format!("its error names no file: {e}")),
        Ok(Err(e)) if run < SEEDS_MAX => Some(format!("a seed does not read: {e}")),
        Ok(Err(_)) => None,
    };
    if let Some(why) = why {
        found.failures.push(keep_failure(name, run, case, why));
    }
}

fn fuzz(name: &str, reader: Reader, cases: &[Case], secs: f64, seed: u64) -> Found {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz").join(name);
    let mut found = Found::default();
    for (i, case) in cases.iter().enumerate() {
        run_one(name, reader, &dir, case, i, &mut found);
    }
    if found.read != cases.len() {
        return found;
    }
    let mut m = Mutator { rng: SplitMix64(seed ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b))) };
    let start = Instant::now();
    let mut run = SEEDS_MAX;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        let mut case = cases[m.below(cases.len())].clone();
        let other = cases[m.below(cases.len())].clone();
        let f = m.below(case.len());
        let o = &other[m.below(other.len())].1;
        m.mutate(&mut case[f].1, o);
        run_one(name, reader, &dir, &case, run, &mut found);
        run += 1;
    }
    found
}

#[test]
fn every_reader_survives_mutations_of_its_seeds_in_bounded_memory() {
    let secs: f64 = std::env::var("SWEEP_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let seed: u64 = std::env::var("SWEEP_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2026);
    // The default hook would print every caught panic; they are reported below instead.
    std::panic::set_hook(Box::new(|_| {}));
    let targets: [(&str, Reader, Vec<Case>); 7] = [
        ("arff", mulan, seeds("arff")),
        ("xc", extreme, seeds("xc")),
        ("tsv", tsv, seeds("tsv")),
        ("csv", csv, seeds("csv")),
        ("jsonl", jsonl, seeds("jsonl")),
        ("fasttext", fasttext, seeds("fasttext")),
        ("parquet", parquet, parquet_seeds()),
    ];
    // The harness's own check first: what is allocated is counted.
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    drop(std::hint::black_box(vec![1u8; 10 << 20]));
    assert!(ALLOC.peak_usage() - base >= 10 << 20, "the allocator counts");
    // A reader that takes what a file declares then fails its allocation (an abort: the
    // input that did it is the one left under the target directory's `fuzz/`) instead of
    // taking the machine's memory.
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), &format!("--as={ADDRESS_SPACE}")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(limited.success(), "prlimit set the address-space limit");
    let mut failures = Vec::new();
    eprintln!("{:<9} {:>6} {:>6} {:>12} {:>9}", "reader", "inputs", "read", "most held", "its size");
    for (name, reader, cases) in &targets {
        let found = fuzz(name, *reader, cases, secs, seed);
        eprintln!("{name:<9} {:>6} {:>6} {:>10} B {:>7} B", found.runs, found.read, found.peak.0, found.peak.1);
        failures.extend(found.failures);
    }
    let _ = std::panic::take_hook();
    // One of each kind (the text after the kept input's folder), with its count.
    let mut kinds: std::collections::BTreeMap<String, (usize, &String)> = Default::default();
    for f in &failures {
        let kind = f.split_once("): ").map_or(f.as_str(), |k| k.1).chars().take(90).collect();
        kinds.entry(kind).or_insert((0, f)).0 += 1;
    }
    let report: Vec<String> = kinds.values().map(|(n, f)| format!("{n} x {f}")).collect();
    assert!(failures.is_empty(), "{} failing input(s), one of each kind:\n{}", failures.len(), report.join("\n"));
}
