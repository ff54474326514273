//! Readers against the real MULAN files in `$SWEEP_DATA_DIR/mulan` (row, label and
//! feature counts from the MULAN README), and the synthetic generator's long tail.

use std::path::PathBuf;

use sweep_file::DatasetConfig;
use sweep_trainer::data;

fn mulan(name: &str) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let dir = sweep_testenv::mulan_dir(name)?;
    Some((
        dir.join(format!("{name}-train.arff")),
        dir.join(format!("{name}-test.arff")),
        dir.join(format!("{name}.xml")),
    ))
}

fn dense(s: &data::Split) -> &[f32] {
    s.dense().expect("dense rows")
}

/// Row, feature and label counts as the datasets README gives them (a nominal feature
/// counts once there; here it is one column per value the training rows hold), and the
/// label cardinality (train and test together) as the MULAN README gives it.
#[test]
fn mulan_readers_match_published_counts() {
    // name, train rows, test rows, feature attributes, labels, dense, cardinality
    for (name, ntr, nte, d, l, dense, card) in [
        ("emotions", 391, 202, 72, 6, true, 1.869),
        ("yeast", 1500, 917, 103, 14, true, 4.237),
        ("bibtex", 4880, 2515, 1836, 159, false, 2.402),
        ("delicious", 12920, 3185, 500, 983, false, 19.020),
        ("birds", 322, 323, 260, 19, true, 1.014),
        ("genbase", 463, 199, 1186, 27, true, 1.252),
    ] {
        let Some((train, test, xml)) = mulan(name) else {
            return;
        };
        let raw = data::read_mulan(&train, &test, &xml).unwrap();
        let nominal = &raw.columns.nominal;
        let indicator_columns: usize = nominal.values().map(Vec::len).sum();
        let attributes = raw.features - indicator_columns + nominal.len();
        assert_eq!(
            (raw.train.n, raw.test.n, attributes, raw.label_names.len(), raw.dense),
            (ntr, nte, d, l, dense),
            "{name}"
        );
        assert!(raw.train.y.iter().all(|&v| v <= 1));
        let positives = raw.train.y.iter().chain(&raw.test.y).map(|&v| v as f64).sum::<f64>();
        let cardinality = positives / (raw.train.n + raw.test.n) as f64;
        assert!((cardinality - card).abs() < 0.01, "{name}: label cardinality {cardinality}, want {card}");
    }
}

/// Birds names labels with escaped quotes; both sets have nominal features, which become
/// one indicator column per value the training rows hold.
#[test]
fn birds_and_genbase_read_their_escaped_names_and_nominal_features() {
    let (Some(birds), Some(genbase)) = (mulan("birds"), mulan("genbase")) else { return };
    let raw = data::read_mulan(&birds.0, &birds.1, &birds.2).unwrap();
    assert!(raw.label_names.contains(&"Swainson's Thrush".to_string()));
    let location = &raw.columns.nominal["location"];
    assert!(!location.is_empty() && location.len() <= 12, "{location:?}");
    assert!(!raw.columns.nominal.contains_key("hasSegments"), "a {{0,1}} attribute is its number");
    let raw = data::read_mulan(&genbase.0, &genbase.1, &genbase.2).unwrap();
    let both = raw.columns.nominal.values().filter(|v| v.len() == 2).count();
    assert!(both > 10, "{both} {{YES,NO}} features seen both ways in training");
    // The protein id names the row: 463 distinct in training, and of the 199 test rows'
    // ids only one occurs in training (counted with a one-line script); the others set
    // no column.
    assert_eq!(raw.columns.nominal["protein"].len(), 463, "one column per training row's protein");
    // `protein` is the first attribute: its indicators are the first 463 columns.
    let with_id = dense(&raw.test).chunks(raw.features).filter(|r| r[..463].contains(&1.0)).count();
    assert_eq!(with_id, 1, "test rows whose protein training has");
}

/// ARFF as Weka writes it: comments, quoted names with escapes, nominal features in
/// dense and sparse rows (an omitted nominal value is its first declared value), values
/// the training rows never hold (all zero), and undeclared values (an error naming
/// file, line and attribute).
#[test]
fn arff_comments_escapes_and_nominal_features() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("t.xml");
    std::fs::write(&xml, "<labels>\n<label name=\"it's\"></label><label name=\"B\"></label>\n</labels>\n").unwrap();
    let header = "% made by hand\n@relation 't r'\n@attribute 'f\\'1' numeric % the first\n\
                  @attribute colour {red, 'dark blue', green}\n@attribute 'it\\'s' {0,1}\n@attribute \"B\" {0,1}\n@data\n";
    let train = dir.path().join("t-train.arff");
    std::fs::write(
        &train,
        format!("{header}0.5,red,1,0\n% a comment line\n1.5,'dark blue',0,1 % trailing\n{{0 2, 3 1}}\n"),
    )
    .unwrap();
    let test = dir.path().join("t-test.arff");
    std::fs::write(&test, format!("{header}2,green,1,1\n{{1 'dark blue'}}\n")).unwrap();
    let raw = data::read_mulan(&train, &test, &xml).unwrap();
    assert_eq!(raw.label_names, ["it's", "B"]);
    // Columns: f'1, then colour=red and colour=dark blue (green never in training).
    assert_eq!(raw.columns.nominal["colour"], ["red", "dark blue"]);
    assert_eq!(raw.features, 3);
    assert_eq!(dense(&raw.train), [0.5, 1.0, 0.0, 1.5, 0.0, 1.0, 2.0, 1.0, 0.0]);
    assert_eq!(raw.train.y, [1, 0, 0, 1, 0, 1]);
    assert_eq!(dense(&raw.test), [2.0, 0.0, 0.0, 0.0, 0.0, 1.0], "green: all zero; sparse 'dark blue'");
    std::fs::write(&test, format!("{header}2,purple,1,1\n")).unwrap();
    let e = data::read_mulan(&train, &test, &xml).unwrap_err().to_string();
    assert!(
        e.contains("t-test.arff:8") && e.contains("attribute `colour`: value `purple` is not one it declares"),
        "{e}"
    );
    std::fs::write(&test, format!("{header}1,red,?,0\n")).unwrap();
    let e = data::read_mulan(&train, &test, &xml).unwrap_err().to_string();
    assert!(e.contains("t-test.arff:8") && e.contains("missing values (?) are not supported"), "{e}");
    // A model's input file is laid out as its training file was.
    let rows = data::read_arff_rows(&test, &raw.label_names, &raw.columns.nominal);
    assert!(rows.is_err(), "the same bad value");
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
    assert!(e.contains("t-test.arff:6") && e.contains("attribute `f1`: `zz` is not a number"), "{e}");
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
    let data::Features::Sparse(x) = &raw.train.x else { panic!("XC rows stay sparse") };
    assert_eq!(x.row(0), (&[0i64, 3][..], &[1.5f32, 2.0][..]));
    assert_eq!(x.row(2), (&[2i64][..], &[0.5f32][..]));
    assert_eq!(&raw.train.y[6..9], &[0, 0, 0]);
    std::fs::write(&te, "3 4 3\n7 0:1\n").unwrap();
    assert!(data::read_xc(&tr, &te).unwrap_err().to_string().contains("label count mismatch"));
}

#[test]
fn synthetic_data_is_long_tailed_and_deterministic() {
    let cfg = DatasetConfig::default();
    let a = data::load(&cfg).unwrap();
    let b = data::load(&cfg).unwrap();
    assert_eq!(dense(&a.train), dense(&b.train));
    assert_eq!(a.labels, 698);
    let raw = data::generate(&sweep_file::SyntheticData::default());
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
    let mean0: f64 = dense(&a.train).chunks(d).map(|r| r[0] as f64).sum::<f64>() / a.train.n as f64;
    assert!(mean0.abs() < 1e-4);
}
