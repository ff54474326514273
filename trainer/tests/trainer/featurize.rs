//! The featurizers against scikit-learn: `TfidfVectorizer` (word, char_wb and char
//! analyzers, 1-3 grams, min_df/max_df as counts and proportions, max_features,
//! sublinear tf, with and without lowercasing) and `HashingVectorizer` (signed and not),
//! fit on a small corpus with punctuation, Unicode, empty rows and repeated terms and
//! applied to held-out rows; values from `reference/make_text.py` (scikit-learn 1.9.1).

use sweep_file::Featurizer;
use sweep_trainer::data::featurize::Fitted;
use sweep_trainer::data::Csr;

type Rows = Vec<Vec<(usize, f64)>>;

fn rows_of(v: &serde_json::Value) -> Rows {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array().unwrap().iter().map(|e| (e[0].as_u64().unwrap() as usize, e[1].as_f64().unwrap())).collect()
        })
        .collect()
}

fn assert_rows(case: &str, what: &str, got: &Csr, want: &Rows) {
    assert_eq!(got.rows(), want.len(), "{case} {what}: rows");
    for (r, want_row) in want.iter().enumerate() {
        let (cols, vals) = got.row(r);
        let got_row: Vec<(usize, f64)> =
            cols.iter().zip(vals).filter(|(_, v)| **v != 0.0).map(|(c, v)| (*c as usize, *v as f64)).collect();
        assert_eq!(
            got_row.iter().map(|e| e.0).collect::<Vec<_>>(),
            want_row.iter().map(|e| e.0).collect::<Vec<_>>(),
            "{case} {what} row {r}: columns"
        );
        for ((c, g), (_, w)) in got_row.iter().zip(want_row) {
            assert!((g - w).abs() < 1e-6, "{case} {what} row {r} column {c}: {g} vs scikit-learn {w}");
        }
    }
}

#[test]
fn tfidf_and_hashing_equal_scikit_learn() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/text.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let docs = |k: &str| -> Vec<String> {
        reference[k].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect()
    };
    let (train, test) = (docs("train"), docs("test"));
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 14);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let settings: Featurizer = serde_json::from_value(case["features"].clone()).unwrap();
        let (fitted, x_train) = Fitted::fit_transform(&settings, &train).unwrap();
        if let Some(vocabulary) = case.get("vocabulary") {
            let want: Vec<&str> = vocabulary.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
            assert_eq!(fitted.vocabulary, want, "{name}: vocabulary and its order");
            for (g, w) in fitted.idf.iter().zip(case["idf"].as_array().unwrap()) {
                assert!((g - w.as_f64().unwrap()).abs() < 1e-9, "{name}: idf {g} vs {w}");
            }
        }
        assert_rows(name, "train", &x_train, &rows_of(&case["train"]));
        assert_rows(name, "test", &fitted.transform(&test), &rows_of(&case["test"]));
    }
}

#[test]
fn a_vocabulary_that_comes_out_empty_is_refused() {
    let settings: Featurizer = serde_json::from_value(serde_json::json!({"kind": "tfidf", "min_df": 3})).unwrap();
    let docs = ["one two".to_string(), "three".into(), "one four".into()];
    let e = Fitted::fit_transform(&settings, &docs).unwrap_err().to_string();
    assert!(e.contains("no term remains"), "{e}");
    let settings: Featurizer =
        serde_json::from_value(serde_json::json!({"kind": "tfidf", "min_df": 2, "max_df": 1})).unwrap();
    let e = Fitted::fit_transform(&settings, &["a b".into()]).unwrap_err().to_string();
    assert!(e.contains("max_df (1 documents) is below min_df (2 documents)"), "{e}");
}
