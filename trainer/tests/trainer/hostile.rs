//! Issue 32, item 5 (part): a small file whose header declares a huge shape is refused
//! with file and reason before the memory it declares is taken (one used to abort the
//! worker, another took 8 GB). The readers of the real MULAN sets are untouched by the
//! bound (`data.rs` reads them all).

use std::time::Instant;

use sweep_trainer::data::{read_mulan, read_xc};

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
    let started = Instant::now();
    let Err(e) = read_mulan(&train, &test, &xml) else { panic!("a million attributes were not refused") };
    // 1,000,000 attributes held densely (8 bytes each) pass the budget (64 times the
    // file's 25 MB) at about row 200, before the 400 rows are read.
    assert!(e.0.contains("h-train.arff:") && e.0.contains("refused"), "{}", e.0);
    let line: usize = e.0.split(':').nth(1).unwrap().parse().unwrap();
    assert!(line > attrs + 2 && line < attrs + 2 + 400, "refused at a data row: {}", e.0);
    assert!(started.elapsed().as_secs() < 60);
}
