//! Raw text in: the readers (TSV, CSV, JSON lines, Parquet, fastText) give the same rows
//! and labels, GoEmotions reads as it is shipped, bad input is one line naming file,
//! line and field, and text trains through the sparse first layer: exactly as a dense
//! copy of the same rows would (`embedding_bag` is `x @ W.T`), fused as alone.

use std::collections::BTreeMap;
use std::path::Path;

use sweep_file::{DataSource, DatasetConfig, TextData, TextFormat, TrialConfig};
use sweep_trainer::data::{self, Features, RawData};
use sweep_trainer::train::{self, Control};
use tch::Device;

/// Deterministic rows: label j is signalled by its words `w{j}a`, `w{j}b`; every row has
/// filler words, and some a comma or quote (CSV quoting).
pub(crate) fn corpus(rows: usize, seed: u64) -> Vec<(String, Vec<String>)> {
    let mut x = seed;
    let mut next = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    (0..rows)
        .map(|i| {
            let labels: Vec<usize> = (0..5).filter(|_| next() % 4 == 0).collect();
            let mut words: Vec<String> = (0..6).map(|_| format!("filler{}", next() % 30)).collect();
            for &j in &labels {
                words.insert(next() % words.len(), format!("w{j}{}", if next() % 2 == 0 { "a" } else { "b" }));
            }
            if i % 7 == 0 {
                words.push("\"quoted, text\"".into());
            }
            (words.join(" "), labels.iter().map(|j| format!("L{j}")).collect())
        })
        .collect()
}

pub(crate) fn write(path: &Path, format: TextFormat, rows: &[(String, Vec<String>)]) {
    let mut out = String::new();
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    match format {
        TextFormat::Tsv => {
            out.push_str("id\ttext\tlabels\n");
            rows.iter()
                .enumerate()
                .for_each(|(i, (t, l))| out.push_str(&format!("{i}\t{}\t{}\n", quote(t), l.join(","))));
        }
        TextFormat::Csv => {
            out.push_str("text,labels,id\n");
            rows.iter()
                .enumerate()
                .for_each(|(i, (t, l))| out.push_str(&format!("{},{},{i}\n", quote(t), quote(&l.join(",")))));
        }
        TextFormat::Jsonl => rows.iter().for_each(|(t, l)| {
            out.push_str(&serde_json::json!({"text": t, "labels": l}).to_string());
            out.push('\n');
        }),
        TextFormat::Fasttext => rows.iter().for_each(|(t, l)| {
            let labels: Vec<String> = l.iter().map(|l| format!("__label__{l}")).collect();
            out.push_str(&format!("{} {}\n", labels.join(" "), t.split_whitespace().collect::<Vec<_>>().join(" ")));
        }),
        TextFormat::Parquet => return write_parquet(path, rows),
    }
    std::fs::write(path, out).unwrap();
}

/// A Parquet file with a `text` string column and a `labels` list<string> column.
pub(crate) fn write_parquet(path: &Path, rows: &[(String, Vec<String>)]) {
    std::fs::write(path, crate::parquet_rows::bytes(rows)).unwrap();
}

fn text_config(dir: &Path, ext: &str) -> DatasetConfig {
    let file = |s: &str| Some(dir.join(format!("{s}.{ext}")).to_string_lossy().into_owned());
    DatasetConfig {
        source: DataSource::Text(TextData { train: file("train"), test: file("test"), ..Default::default() }),
        ..Default::default()
    }
}

fn sparse(s: &data::Split) -> &data::Csr {
    match &s.x {
        Features::Sparse(c) => c,
        Features::Dense(_) => panic!("text rows stay sparse"),
    }
}

#[test]
fn every_format_reads_the_same_rows_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (corpus(120, 1), corpus(30, 2));
    let mut read = Vec::new();
    for (format, ext) in [
        (TextFormat::Tsv, "tsv"),
        (TextFormat::Csv, "csv"),
        (TextFormat::Jsonl, "jsonl"),
        (TextFormat::Parquet, "parquet"),
        (TextFormat::Fasttext, "ft"),
    ] {
        write(&dir.path().join(format!("train.{ext}")), format, &train);
        write(&dir.path().join(format!("test.{ext}")), format, &test);
        let raw = data::read(&text_config(dir.path(), ext)).unwrap();
        read.push((ext, raw));
    }
    let (_, first) = &read[0];
    assert_eq!(first.label_names, ["L0", "L1", "L2", "L3", "L4"]);
    assert_eq!((first.train.n, first.test.n), (120, 30));
    for (ext, raw) in &read[1..] {
        assert_eq!(raw.label_names, first.label_names, "{ext}");
        assert_eq!(raw.train.y, first.train.y, "{ext}: labels");
        // fastText joins its words with one space; the word analyzer sees the same terms.
        assert_eq!(sparse(&raw.train), sparse(&first.train), "{ext}: features");
        assert_eq!(sparse(&raw.test), sparse(&first.test), "{ext}: test features");
    }
}

/// GoEmotions as shipped: the official splits, ids in the label column naming lines of
/// labels.txt; counts from the datasets README.
#[test]
fn goemotions_reads_as_it_is_shipped() {
    let Some(dir) = sweep_testenv::data_file("text/goemotions") else { return };
    let f = |n: &str| Some(dir.join(n).to_string_lossy().into_owned());
    let cfg = TextData {
        train: f("train.tsv"),
        val: f("dev.tsv"),
        test: f("test.tsv"),
        text: sweep_file::TextFields::One("text".into()),
        labels: "label".into(),
        label_names: f("labels.txt"),
        ..Default::default()
    };
    let raw = data::read(&DatasetConfig { source: DataSource::Text(cfg), ..Default::default() }).unwrap();
    assert_eq!((raw.train.n, raw.val.as_ref().unwrap().n, raw.test.n), (43_410, 5_426, 5_427));
    assert_eq!(raw.label_names.len(), 28);
    let per_label: Vec<usize> = (0..28).map(|j| raw.train.y.chunks(28).filter(|r| r[j] == 1).count()).collect();
    let by_name: BTreeMap<&str, usize> =
        raw.label_names.iter().map(String::as_str).zip(per_label.iter().copied()).collect();
    assert_eq!((by_name["grief"], by_name["neutral"]), (77, 14_219));
    assert_eq!(per_label.iter().min(), Some(&77));
    let cardinality = per_label.iter().sum::<usize>() as f64 / raw.train.n as f64;
    assert!((cardinality - 1.18).abs() < 0.005, "{cardinality}");
    assert!(raw.unseen_labels.is_empty());
    assert!(raw.features > 10_000, "a word vocabulary: {}", raw.features);
}

/// One line naming file, line and field for each kind of bad input.
#[test]
fn bad_text_input_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let read = |train: &str, test: &str, extra: &dyn Fn(&mut TextData)| -> String {
        let mut t = TextData {
            train: Some(p(train).to_string_lossy().into_owned()),
            test: Some(p(test).to_string_lossy().into_owned()),
            ..Default::default()
        };
        extra(&mut t);
        let e =
            data::read(&DatasetConfig { source: DataSource::Text(t), ..Default::default() }).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    };
    std::fs::write(p("ok.tsv"), "text\tlabels\nhello world\ta\nmore words\tb\n").unwrap();
    std::fs::write(p("noname.tsv"), "body\ttags\nhello\ta\n").unwrap();
    let e = read("noname.tsv", "ok.tsv", &|_| {});
    assert!(e.contains("noname.tsv: no text field `text`; the fields are: body, tags"), "{e}");
    let e = read("ok.tsv", "ok.tsv", &|t| t.labels = "tags".into());
    assert!(e.contains("ok.tsv: no labels field `tags`; the fields are: text, labels"), "{e}");
    std::fs::write(p("names.txt"), "a\nb\n").unwrap();
    std::fs::write(p("ids.tsv"), "text\tlabels\nfine\t0\nbad id\t1,5\n").unwrap();
    let e = read("ids.tsv", "ok.tsv", &|t| t.label_names = Some(p("names.txt").to_string_lossy().into_owned()));
    assert!(e.contains("ids.tsv:3: label id 5 is outside label_names (2 names, ids 0 to 1)"), "{e}");
    std::fs::write(p("utf8.tsv"), b"text\tlabels\nok\ta\nbad \xff byte\tb\n").unwrap();
    let e = read("utf8.tsv", "ok.tsv", &|_| {});
    assert!(e.contains("utf8.tsv:3: invalid UTF-8"), "{e}");
    std::fs::write(
        p("types.jsonl"),
        "{\"text\": \"fine\", \"labels\": [\"a\"]}\n{\"text\": \"odd\", \"labels\": {\"a\": 1}}\n",
    )
    .unwrap();
    let e = read("types.jsonl", "types.jsonl", &|_| {});
    assert!(e.contains("types.jsonl:2: field `labels` is an object, expected a list or a string"), "{e}");
    std::fs::write(p("empty.tsv"), "text\tlabels\n").unwrap();
    let e = read("empty.tsv", "ok.tsv", &|_| {});
    assert!(e.contains("empty.tsv: the training split is empty"), "{e}");
    std::fs::write(p("short.tsv"), "text\tlabels\nhi\ta\nlone\n").unwrap();
    let e = read("short.tsv", "ok.tsv", &|_| {});
    assert!(e.contains("short.tsv:3: 1 fields, the header has 2"), "{e}");
    let e = read("ok.tsv", "ok.tsv", &|t| {
        t.features = serde_json::from_value(serde_json::json!({"kind": "tfidf", "min_df": 2})).unwrap()
    });
    assert!(e.contains("no term remains (the vocabulary is empty)"), "{e}");
    // A Parquet column of a type it cannot read.
    {
        use parquet::data_type::Int32Type;
        let schema =
            parquet::schema::parser::parse_message_type("message m { REQUIRED INT32 text; REQUIRED INT32 labels; }")
                .unwrap();
        let f = std::fs::File::create(p("ints.parquet")).unwrap();
        let mut w = parquet::file::writer::SerializedFileWriter::new(f, schema.into(), Default::default()).unwrap();
        let mut g = w.next_row_group().unwrap();
        for _ in 0..2 {
            let mut c = g.next_column().unwrap().unwrap();
            c.typed::<Int32Type>().write_batch(&[1, 2], None, None).unwrap();
            c.close().unwrap();
        }
        g.close().unwrap();
        w.close().unwrap();
    }
    let e = read("ints.parquet", "ints.parquet", &|_| {});
    assert!(e.contains("ints.parquet: row 1: column `text` holds an integer, expected strings"), "{e}");
}

/// Labels only the test rows hold are reported, not scored.
#[test]
fn labels_only_in_test_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.tsv"), "text\tlabels\nalpha beta\tx\ngamma delta\ty\n").unwrap();
    std::fs::write(dir.path().join("test.tsv"), "text\tlabels\nalpha gamma\tx,z\nbeta\tz\n").unwrap();
    let raw = data::read(&text_config(dir.path(), "tsv")).unwrap();
    assert_eq!(raw.label_names, ["x", "y"]);
    assert_eq!(raw.unseen_labels, BTreeMap::from([("z".to_string(), 2)]));
    assert_eq!(raw.test.y, [1, 0, 0, 0]);
}

fn small_text_trial(dataset: DatasetConfig) -> TrialConfig {
    let mut c = TrialConfig { dataset, ..Default::default() };
    (c.model.hidden, c.model.dropout) = (vec![16], 0.2);
    (c.train.epochs, c.train.batch_size, c.train.lr, c.train.patience) = (3, 32, 0.01, 0);
    c
}

/// The same rows as dense features: what `nn.Linear` would see (test only).
fn densified(raw: &RawData) -> RawData {
    let dense = |s: &data::Split| {
        let c = sparse(s);
        let mut x = vec![0f32; s.n * c.cols];
        for r in 0..s.n {
            let (cols, vals) = c.row(r);
            cols.iter().zip(vals).for_each(|(&j, &v)| x[r * c.cols + j as usize] = v);
        }
        data::Split { n: s.n, x: Features::Dense(x), y: s.y.clone() }
    };
    RawData { train: dense(&raw.train), test: dense(&raw.test), val: raw.val.as_ref().map(dense), ..raw.clone() }
}

/// The sparse first layer computes what `nn.Linear` does on the dense rows: the same
/// trial trained on sparse and on densified copies of one text dataset gives the same
/// losses and F1 (to float rounding); and three text trials fused give each its own.
#[test]
fn text_trains_through_the_sparse_layer_as_dense_rows_would_and_fused_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("train.tsv"), TextFormat::Tsv, &corpus(400, 3));
    write(&dir.path().join("test.tsv"), TextFormat::Tsv, &corpus(100, 4));
    let cfg = small_text_trial(text_config(dir.path(), "tsv"));
    let raw = data::read(&cfg.dataset).unwrap();
    let (sparse_ds, dense_ds) = {
        let how = data::SplitSettings::random(0.1, 0);
        (data::split(&raw, &how).unwrap(), data::split(&densified(&raw), &how).unwrap())
    };
    let run = |ds: &data::Dataset, c: &TrialConfig| {
        train::train_one(ds, c, Device::Cpu, &mut |_| {}, &Control::default()).unwrap()
    };
    let (s, d) = (run(&sparse_ds, &cfg), run(&dense_ds, &cfg));
    for (a, b) in s.history.iter().zip(&d.history) {
        let (la, lb) = (a.metrics["train.loss"], b.metrics["train.loss"]);
        assert!((la - lb).abs() < 1e-5 * lb.abs().max(1e-3), "epoch {}: sparse {la} dense {lb}", a.epoch);
    }
    for m in ["test.f1_micro", "test.f1_macro", "val.f1_micro"] {
        assert!((s.metrics[m] - d.metrics[m]).abs() < 1e-4, "{m}: sparse {} dense {}", s.metrics[m], d.metrics[m]);
    }
    assert!(s.metrics["test.f1_micro"] > 0.5, "the signal words are learnt: {}", s.metrics["test.f1_micro"]);
    // Fused: three seeds and learning rates as one stack, each as it trains alone.
    let cfgs: Vec<TrialConfig> = (0..3)
        .map(|i| {
            let mut c = cfg.clone();
            (c.train.seed, c.train.lr) = (i, 0.005 * (i + 1) as f64);
            c
        })
        .collect();
    let controls: Vec<Control> = cfgs.iter().map(|_| Control::default()).collect();
    let refs: Vec<&Control> = controls.iter().collect();
    let fused = train::train_fused(&sparse_ds, &cfgs, Device::Cpu, &mut |_, _| {}, &refs);
    for (c, f) in cfgs.iter().zip(fused) {
        let (f, alone) = (f.unwrap(), run(&sparse_ds, c));
        assert_eq!(f.best_epoch, alone.best_epoch);
        for m in ["train.loss", "test.f1_micro", "test.f1_macro_tuned"] {
            let (x, y) = (f.metrics[m], alone.metrics[m]);
            assert!((x - y).abs() < 1e-4, "seed {}: {m} fused {x} alone {y}", c.train.seed);
        }
        assert_eq!(f.metrics["stack_size"], 3.0);
    }
}
