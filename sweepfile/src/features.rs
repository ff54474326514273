//! `dataset.features`: how a text dataset becomes feature columns (fit on the training
//! split), as scikit-learn's `TfidfVectorizer` or `HashingVectorizer` with the same
//! settings. The trainer computes them (`trainer/src/data/featurize.rs`).

use serde::{Deserialize, Serialize};

/// How text becomes features, fit on the training split: scikit-learn's
/// `TfidfVectorizer` or `HashingVectorizer` with the same settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Featurizer {
    Tfidf(Tfidf),
    Hashing(Hashing),
}

impl Default for Featurizer {
    fn default() -> Self {
        Featurizer::Tfidf(Tfidf::default())
    }
}

/// What the n-grams are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Analyzer {
    /// Tokens of two or more word characters (`(?u)\b\w\w+\b`), n-grams of tokens.
    #[default]
    Word,
    /// Character n-grams inside word boundaries (each word padded with a space).
    CharWb,
    /// Character n-grams over the whole (whitespace-normalised) text.
    Char,
}

/// A document-frequency bound: an absolute count of documents (an integer) or a
/// proportion of them (a float), as scikit-learn's `min_df` / `max_df`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DocFreq {
    Count(u64),
    Fraction(f64),
}

impl DocFreq {
    /// The bound in documents for a corpus of `n` (a proportion scaled by n).
    pub fn documents(self, n: usize) -> f64 {
        match self {
            DocFreq::Count(c) => c as f64,
            DocFreq::Fraction(f) => f * n as f64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tfidf {
    pub analyzer: Analyzer,
    /// Smallest and largest n.
    pub ngram: [u32; 2],
    pub min_df: DocFreq,
    pub max_df: DocFreq,
    /// Keep only the terms most frequent over the corpus (after min_df/max_df).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_features: Option<u64>,
    /// tf = 1 + ln(count) instead of the count.
    pub sublinear_tf: bool,
    pub lowercase: bool,
}

impl Default for Tfidf {
    fn default() -> Self {
        Tfidf {
            analyzer: Analyzer::Word,
            ngram: [1, 1],
            min_df: DocFreq::Count(1),
            max_df: DocFreq::Fraction(1.0),
            max_features: None,
            sublinear_tf: false,
            lowercase: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hashing {
    pub analyzer: Analyzer,
    pub ngram: [u32; 2],
    /// Columns (scikit-learn's default is 2^20; here 2^18, since every column is a row
    /// of the first layer's weights).
    pub n_features: u32,
    /// `alternate_sign`: the hash's sign bit signs each count, so collisions cancel.
    pub signed: bool,
    pub lowercase: bool,
}

impl Default for Hashing {
    fn default() -> Self {
        Hashing { analyzer: Analyzer::Word, ngram: [1, 1], n_features: 1 << 18, signed: true, lowercase: true }
    }
}

impl Featurizer {
    pub fn analyzer(&self) -> Analyzer {
        match self {
            Featurizer::Tfidf(t) => t.analyzer,
            Featurizer::Hashing(h) => h.analyzer,
        }
    }

    pub fn ngram(&self) -> [u32; 2] {
        match self {
            Featurizer::Tfidf(t) => t.ngram,
            Featurizer::Hashing(h) => h.ngram,
        }
    }

    pub fn lowercase(&self) -> bool {
        match self {
            Featurizer::Tfidf(t) => t.lowercase,
            Featurizer::Hashing(h) => h.lowercase,
        }
    }

    /// Range checks, as (field under `dataset.features`, problem).
    pub(crate) fn check(&self, bad: &mut Vec<(String, String)>) {
        let [lo, hi] = self.ngram();
        if lo == 0 || lo > hi || hi > 10 {
            bad.push((
                "dataset.features.ngram".into(),
                format!("[{lo}, {hi}] must be [min_n, max_n] with 1 <= min_n <= max_n <= 10"),
            ));
        }
        match self {
            Featurizer::Tfidf(t) => {
                for (name, df) in [("min_df", t.min_df), ("max_df", t.max_df)] {
                    if let DocFreq::Fraction(f) = df {
                        if !(0.0..=1.0).contains(&f) {
                            let msg =
                                format!("{f} is out of range: a proportion in [0, 1], or a whole count of documents");
                            bad.push((format!("dataset.features.{name}"), msg));
                        }
                    }
                }
                if t.max_features == Some(0) {
                    bad.push((
                        "dataset.features.max_features".into(),
                        "must be at least 1 (or left out: no limit)".into(),
                    ));
                }
            }
            Featurizer::Hashing(h) => {
                if h.n_features == 0 || h.n_features > 1 << 24 {
                    bad.push((
                        "dataset.features.n_features".into(),
                        format!("{} is out of range: must be in [1, 16777216]", h.n_features),
                    ));
                }
            }
        }
    }
}
