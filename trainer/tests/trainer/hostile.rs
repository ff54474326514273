//! Issue 32, item 5 (part): a small file whose header declares a huge shape is refused
//! with file and reason before the memory it declares is taken (one used to abort the
//! worker, another took 8 GB). The readers of the real MULAN sets are untouched by the
//! bound (`data.rs` reads them all). The fuzzing of every reader is its own binary
//! (`tests/fuzz`).

use sweep_file::{TextData, TextFormat};
use sweep_trainer::data::{read_mulan, read_xc, text};

#[test]
fn an_xc_header_declaring_a_trillion_labels_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (dir.path().join("train.txt"), dir.path().join("test.txt"));
    for p in [&train, &test] {
        std::fs::write(p, "1 10 1000000000000\n0 1:1\n").unwrap();
    }
    assert!(std::fs::metadata(&train).unwrap().len() < 40);
    let Err(e) = read_xc(&train, &test) else { panic!("a trillion labels were not refused") };
    assert!(e.0.contains("train.txt") && e.0.contains("refused"), "{}", e.0);
}

#[test]
fn a_sparse_arff_declaring_a_million_attributes_is_refused_at_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let attrs = 1_000_000;
    let mut text = String::from("@relation hostile\n");
    for i in 0..attrs {
        text.push_str(&format!("@attribute a{i} {{0,1}}\n"));
    }
    text.push_str("@data\n");
    for _ in 0..400 {
        text.push_str("{0 1}\n");
    }
    let (train, test, xml) =
        (dir.path().join("h-train.arff"), dir.path().join("h-test.arff"), dir.path().join("h.xml"));
    std::fs::write(&train, &text).unwrap();
    std::fs::write(&test, &text).unwrap();
    std::fs::write(&xml, "<labels xmlns=\"http://mulan.sourceforge.net/labels\"><label name=\"a0\"></label></labels>")
        .unwrap();
    let Err(e) = read_mulan(&train, &test, &xml) else { panic!("a million attributes were not refused") };
    // 1,000,000 attributes held densely (8 bytes each) pass the budget (64 times the
    // file's 25 MB) at about row 200, before the 400 rows are read.
    assert!(e.0.contains("h-train.arff:") && e.0.contains("refused"), "{}", e.0);
    let line: usize = e.0.split(':').nth(1).unwrap().parse().unwrap();
    assert!(line > attrs + 2 && line < attrs + 2 + 400, "refused at a data row: {}", e.0);
}

/// A Parquet file of three rows whose footer is made to declare five billion: refused
/// from the footer, before a row is read. Made to declare them in its row group instead,
/// the Parquet crate panics (index out of bounds); that is this file's error too.
#[test]
fn a_parquet_footer_declaring_billions_of_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.parquet");
    let rows: Vec<(String, Vec<String>)> = (0..3).map(|i| (format!("row {i}"), vec!["a".to_string()])).collect();
    crate::text::write_parquet(&path, &rows);
    let bytes = std::fs::read(&path).unwrap();
    let read = |file: &[u8]| {
        std::fs::write(&path, file).unwrap();
        assert!(file.len() < 1024, "a small file: {} bytes", file.len());
        let cfg = TextData { format: Some(TextFormat::Parquet), ..Default::default() };
        let files = text::TextFiles { train: &path, val: None, test: &path, label_names: None };
        match text::read_text(&cfg, files) {
            Ok(_) => panic!("five billion declared rows were read"),
            Err(e) => e.0,
        }
    };
    let e = read(&declaring(&bytes, 5_000_000_000, false));
    assert!(e.contains("rows.parquet") && e.contains("declared rows: 5000000000 x 1"), "{e}");
    let e = read(&declaring(&bytes, 5_000_000_000, true));
    assert!(e.contains("rows.parquet: not a Parquet file this reader can read"), "{e}");
}

/// A Parquet file of 3 rows with `rows` declared in its footer's num_rows (compact thrift:
/// field header 0x16, then the zigzag varint 6 for 3): the file's (the first such pair),
/// or its row group's (the last).
fn declaring(bytes: &[u8], rows: u64, in_row_group: bool) -> Vec<u8> {
    // The footer: its thrift, its length (4 bytes, little-endian), then `PAR1`.
    let len = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap()) as usize;
    let start = bytes.len() - 8 - len;
    let footer = &bytes[start..bytes.len() - 8];
    let mut pairs = footer.windows(2);
    let found =
        if in_row_group { pairs.rposition(|w| w == [0x16, 0x06]) } else { pairs.position(|w| w == [0x16, 0x06]) };
    let at = found.expect("num_rows = 3 in the footer");
    let mut zigzag = rows << 1;
    let mut patched = footer[..=at].to_vec();
    while zigzag >= 0x80 {
        patched.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    patched.push(zigzag as u8);
    patched.extend(&footer[at + 2..]);
    let mut file = bytes[..start].to_vec();
    file.extend(&patched);
    file.extend((patched.len() as u32).to_le_bytes());
    file.extend(b"PAR1");
    file
}
