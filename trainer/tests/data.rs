//! Readers against the real MULAN files in `$SWEEP_DATA_DIR/mulan` (row, label and
//! feature counts from the MULAN README), and the synthetic generator's long tail.

use std::path::PathBuf;

use sweep_spec::DatasetConfig;
use sweep_trainer::data;

fn mulan(name: &str) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let dir = sweep_testkit::mulan_dir(name)?;
    Some((
        dir.join(format!("{name}-train.arff")),
        dir.join(format!("{name}-test.arff")),
        dir.join(format!("{name}.xml")),
    ))
}

#[test]
fn mulan_readers_match_published_counts() {
    // name, train rows, test rows, features, labels, dense
    for (name, ntr, nte, d, l, dense) in [
        ("emotions", 391, 202, 72, 6, true),
        ("yeast", 1500, 917, 103, 14, true),
        ("bibtex", 4880, 2515, 1836, 159, false),
        ("delicious", 12920, 3185, 500, 983, false),
    ] {
        let Some((train, test, xml)) = mulan(name) else {
            return;
        };
        let raw = data::read_mulan(&train, &test, &xml).unwrap();
        assert_eq!(
            (raw.train.n, raw.test.n, raw.features, raw.label_names.len(), raw.dense),
            (ntr, nte, d, l, dense),
            "{name}"
        );
        assert!(raw.train.y.iter().all(|&v| v <= 1));
        let cardinality = raw.train.y.iter().map(|&v| v as f64).sum::<f64>() / raw.train.n as f64;
        assert!(cardinality > 1.0, "{name}: label cardinality {cardinality}");
    }
}

#[test]
fn malformed_arff_fails_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("t.xml");
    std::fs::write(&xml, "<labels>\n<label name=\"L1\"></label>\n</labels>\n").unwrap();
    let good = "@relation t\n@attribute f1 numeric\n@attribute L1 {0,1}\n@data\n0.5,1\n";
    let train = dir.path().join("t-train.arff");
    std::fs::write(&train, good).unwrap();
    let bad = dir.path().join("t-test.arff");
    std::fs::write(&bad, "@relation t\n@attribute f1 numeric\n@attribute L1 {0,1}\n@data\n0.5,1\nzz,0\n").unwrap();
    let e = data::read_mulan(&train, &bad, &xml).unwrap_err().to_string();
    assert!(e.contains("t-test.arff:6") && e.contains("`zz` is not a number"), "{e}");
    let missing = data::read_mulan(&dir.path().join("nope.arff"), &bad, &xml).unwrap_err().to_string();
    assert!(missing.contains("nope.arff"), "{missing}");
    std::fs::write(&xml, "<labels>\n<label name=\"L1\"></label><label name=\"L2\"></label>\n</labels>\n").unwrap();
    let mismatch = data::read_mulan(&train, &train, &xml).unwrap_err().to_string();
    assert!(mismatch.contains("label count mismatch"), "{mismatch}");
}

#[test]
fn xc_format_reads_labels_and_sparse_features() {
    let dir = tempfile::tempdir().unwrap();
    let (tr, te) = (dir.path().join("tr.txt"), dir.path().join("te.txt"));
    std::fs::write(&tr, "3 4 3\n0,2 0:1.5 3:2\n1 1:1\n 2:0.5\n").unwrap();
    std::fs::write(&te, "3 4 3\n2 0:1\n").unwrap();
    let raw = data::read_xc(&tr, &te).unwrap();
    assert_eq!((raw.train.n, raw.features, raw.label_names.len()), (3, 4, 3));
    assert_eq!(&raw.train.y[..3], &[1, 0, 1]);
    assert_eq!(&raw.train.x[..4], &[1.5, 0.0, 0.0, 2.0]);
    assert_eq!(&raw.train.y[6..9], &[0, 0, 0]);
    std::fs::write(&te, "3 4 3\n7 0:1\n").unwrap();
    assert!(data::read_xc(&tr, &te).unwrap_err().to_string().contains("label count mismatch"));
}

#[test]
fn synthetic_data_is_long_tailed_and_deterministic() {
    let cfg = DatasetConfig::default();
    let a = data::load(&cfg).unwrap();
    let b = data::load(&cfg).unwrap();
    assert_eq!(a.train.x, b.train.x);
    assert_eq!(a.labels, 698);
    let raw = data::generate(&cfg);
    let mut pos = vec![0u32; 698];
    for row in raw.train.y.chunks(698) {
        for (p, &v) in pos.iter_mut().zip(row) {
            *p += v as u32;
        }
    }
    let (max, min) = (*pos.iter().max().unwrap(), *pos.iter().min().unwrap());
    assert!(max >= 1000, "head label has {max} positives");
    assert!(min <= 12, "tail label has {min} positives");
    // Dense features are standardised with training statistics.
    let d = a.features;
    let mean0: f64 = a.train.x.chunks(d).map(|r| r[0] as f64).sum::<f64>() / a.train.n as f64;
    assert!(mean0.abs() < 1e-4);
}
