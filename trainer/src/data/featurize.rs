//! Text to sparse features, equal to scikit-learn's `TfidfVectorizer` and
//! `HashingVectorizer` with the same settings (checked against values scikit-learn
//! computed, `trainer/tests/reference/make_text.py`):
//!
//! 1. Preprocess: lowercase (Python's `str.lower`, full Unicode mapping) when asked.
//! 2. Analyze: `word` takes tokens as `(?u)\b\w\w+\b` does (runs of two or more letters,
//!    digits or `_`, Python's `\w`), then n-grams of them joined by a space, shortest n
//!    first; `char_wb` pads each whitespace-separated word with a space and takes its
//!    character n-grams (a word shorter than n once); `char` takes character n-grams of
//!    the text with runs of whitespace squeezed to one space.
//! 3. TF-IDF, fit on the training rows: the vocabulary is every term within
//!    `min_df`/`max_df` (counts, or proportions of the documents), cut to the
//!    `max_features` most frequent over the corpus (ties at the cut go to the term that
//!    sorts first: numpy's unstable argsort may pick another), in sorted term order;
//!    idf = ln((1 + n) / (1 + df)) + 1; tf is the count (1 + ln(count) when
//!    `sublinear_tf`); rows are scaled to unit L2 norm.
//! 4. Hashing: MurmurHash3 (x86, 32 bit, seed 0) of each term's UTF-8 bytes, column
//!    |h| mod n_features, the count signed by the hash's sign when `signed`; rows scaled
//!    to unit L2 norm. Nothing is fit.
//!
//! Values are computed in float64 and stored as float32.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sweep_file::{Analyzer, Featurizer, Hashing, Tfidf};

use super::csr::Csr;
use super::DataError;

/// A featurizer after fitting: what turns any text into the model's columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    pub settings: Featurizer,
    /// TF-IDF: the terms in column order and their idf; empty for hashing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vocabulary: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idf: Vec<f64>,
}

impl Fitted {
    /// Columns of the feature matrix.
    pub fn columns(&self) -> usize {
        match &self.settings {
            Featurizer::Tfidf(_) => self.vocabulary.len(),
            Featurizer::Hashing(h) => h.n_features as usize,
        }
    }

    /// Fits on the training documents; returns the fit and their rows.
    pub fn fit_transform(settings: &Featurizer, docs: &[String]) -> Result<(Fitted, Csr), DataError> {
        match settings {
            Featurizer::Tfidf(t) => fit_tfidf(t, settings, docs),
            Featurizer::Hashing(_) => {
                let fitted = Fitted { settings: settings.clone(), vocabulary: vec![], idf: vec![] };
                let x = fitted.transform(docs);
                Ok((fitted, x))
            }
        }
    }

    /// The rows of `docs` (terms outside the vocabulary are dropped).
    pub fn transform(&self, docs: &[String]) -> Csr {
        let analyzer = Analyze::new(&self.settings);
        let mut csr = Csr::empty(self.columns());
        match &self.settings {
            Featurizer::Tfidf(t) => {
                let index: HashMap<&str, usize> =
                    self.vocabulary.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
                for doc in docs {
                    let mut counts: HashMap<usize, f64> = HashMap::new();
                    analyzer.terms(doc, |term| {
                        if let Some(&c) = index.get(term) {
                            *counts.entry(c).or_default() += 1.0;
                        }
                    });
                    let row = counts.into_iter().map(|(c, n)| (c, tf(n, t.sublinear_tf) * self.idf[c])).collect();
                    csr.push_row(l2_normalized(row));
                }
            }
            Featurizer::Hashing(h) => {
                for doc in docs {
                    let mut row: HashMap<usize, f64> = HashMap::new();
                    analyzer.terms(doc, |term| {
                        let (col, sign) = hash_column(term, h);
                        *row.entry(col).or_default() += sign;
                    });
                    csr.push_row(l2_normalized(row.into_iter().collect()));
                }
            }
        }
        csr
    }
}

fn tf(count: f64, sublinear: bool) -> f64 {
    if sublinear {
        1.0 + count.ln()
    } else {
        count
    }
}

/// Column and sign of a term under the hashing trick, as scikit-learn's `FeatureHasher`.
fn hash_column(term: &str, h: &Hashing) -> (usize, f64) {
    let hash = murmur3_32(term.as_bytes(), 0) as i32;
    let n = h.n_features as i64;
    let col = if hash == i32::MIN { (i32::MAX as i64 - (n - 1)) % n } else { (hash as i64).abs() % n };
    let sign = if !h.signed || hash >= 0 { 1.0 } else { -1.0 };
    (col as usize, sign)
}

/// MurmurHash3, x86 32-bit variant (Austin Appleby's reference), as scikit-learn's
/// `murmurhash3_32`.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for b in blocks.by_ref() {
        let mut k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &byte) in tail.iter().enumerate() {
            k |= (byte as u32) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Entries sorted by column and scaled to unit L2 norm (a zero row stays zero).
fn l2_normalized(mut row: Vec<(usize, f64)>) -> Vec<(usize, f64)> {
    row.sort_unstable_by_key(|e| e.0);
    let norm = row.iter().map(|e| e.1 * e.1).sum::<f64>().sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|e| e.1 /= norm);
    }
    row
}

fn fit_tfidf(t: &Tfidf, settings: &Featurizer, docs: &[String]) -> Result<(Fitted, Csr), DataError> {
    let analyzer = Analyze::new(settings);
    // Term -> (document frequency, total count); each document's own counts.
    let mut stats: HashMap<String, (u64, u64)> = HashMap::new();
    let mut rows: Vec<HashMap<String, u64>> = Vec::with_capacity(docs.len());
    for doc in docs {
        let mut counts: HashMap<String, u64> = HashMap::new();
        analyzer.terms(doc, |term| *counts.entry(term.to_string()).or_default() += 1);
        for (term, n) in &counts {
            let s = stats.entry(term.clone()).or_default();
            s.0 += 1;
            s.1 += n;
        }
        rows.push(counts);
    }
    let n = docs.len();
    let (max_docs, min_docs) = (t.max_df.documents(n), t.min_df.documents(n));
    if max_docs < min_docs {
        return Err(DataError(format!(
            "dataset.features: max_df ({max_docs} documents) is below min_df ({min_docs} documents)"
        )));
    }
    let mut terms: Vec<(String, u64, u64)> = stats
        .into_iter()
        .filter(|(_, (df, _))| (*df as f64) <= max_docs && (*df as f64) >= min_docs)
        .map(|(term, (df, total))| (term, df, total))
        .collect();
    terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(limit) = t.max_features.filter(|&m| (m as usize) < terms.len()) {
        // The most frequent over the corpus; equal counts keep sorted order (stable).
        let mut by_count: Vec<usize> = (0..terms.len()).collect();
        by_count.sort_by(|&a, &b| terms[b].2.cmp(&terms[a].2));
        let mut keep = vec![false; terms.len()];
        by_count.iter().take(limit as usize).for_each(|&i| keep[i] = true);
        let mut i = 0;
        terms.retain(|_| (keep[i], i += 1).0);
    }
    if terms.is_empty() {
        return Err(DataError(
            "dataset.features: after min_df/max_df no term remains (the vocabulary is empty): lower min_df or raise max_df"
                .into(),
        ));
    }
    let smoothed = (n + 1) as f64;
    let idf: Vec<f64> = terms.iter().map(|(_, df, _)| (smoothed / (*df as f64 + 1.0)).ln() + 1.0).collect();
    let vocabulary: Vec<String> = terms.into_iter().map(|(term, _, _)| term).collect();
    let index: HashMap<&str, usize> = vocabulary.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut csr = Csr::empty(vocabulary.len());
    for counts in rows {
        let row = counts
            .iter()
            .filter_map(|(term, &c)| {
                index.get(term.as_str()).map(|&col| (col, tf(c as f64, t.sublinear_tf) * idf[col]))
            })
            .collect();
        csr.push_row(l2_normalized(row));
    }
    let fitted = Fitted { settings: settings.clone(), vocabulary: vocabulary.clone(), idf };
    Ok((fitted, csr))
}

/// Turns a document into its terms (n-grams of words or characters).
struct Analyze {
    analyzer: Analyzer,
    ngram: [usize; 2],
    lowercase: bool,
}

/// Python's `\w` (`str.isalnum()` or `_`): letters, numbers, underscore.
fn word_run() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"[\p{L}\p{N}_]{2,}").expect("token pattern"))
}

/// Runs of two or more whitespace characters (scikit-learn's `_white_spaces`).
fn white_spaces() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\s\s+").expect("whitespace pattern"))
}

impl Analyze {
    fn new(f: &Featurizer) -> Analyze {
        let [lo, hi] = f.ngram();
        Analyze { analyzer: f.analyzer(), ngram: [lo as usize, hi as usize], lowercase: f.lowercase() }
    }

    /// Calls `emit` with each term of `doc`, in scikit-learn's order.
    fn terms(&self, doc: &str, mut emit: impl FnMut(&str)) {
        let lowered;
        let doc = if self.lowercase {
            lowered = doc.to_lowercase();
            lowered.as_str()
        } else {
            doc
        };
        let [lo, hi] = self.ngram;
        match self.analyzer {
            Analyzer::Word => {
                let tokens: Vec<&str> = word_run().find_iter(doc).map(|m| m.as_str()).collect();
                let mut gram = String::new();
                for n in lo..=hi.min(tokens.len()) {
                    for w in tokens.windows(n) {
                        gram.clear();
                        for (i, t) in w.iter().enumerate() {
                            if i > 0 {
                                gram.push(' ');
                            }
                            gram.push_str(t);
                        }
                        emit(&gram);
                    }
                }
            }
            Analyzer::CharWb => {
                let squeezed = white_spaces().replace_all(doc, " ");
                let mut buf = String::new();
                for word in squeezed.split_whitespace() {
                    let padded: Vec<char> =
                        std::iter::once(' ').chain(word.chars()).chain(std::iter::once(' ')).collect();
                    for n in lo..=hi {
                        let mut offset = 0;
                        emit_chars(&padded[offset..(offset + n).min(padded.len())], &mut buf, &mut emit);
                        while offset + n < padded.len() {
                            offset += 1;
                            emit_chars(&padded[offset..offset + n], &mut buf, &mut emit);
                        }
                        if offset == 0 {
                            break;
                        }
                    }
                }
            }
            Analyzer::Char => {
                let chars: Vec<char> = white_spaces().replace_all(doc, " ").chars().collect();
                let mut buf = String::new();
                for n in lo..=hi.min(chars.len()) {
                    for w in chars.windows(n) {
                        emit_chars(w, &mut buf, &mut emit);
                    }
                }
            }
        }
    }
}

fn emit_chars(chars: &[char], buf: &mut String, emit: &mut impl FnMut(&str)) {
    buf.clear();
    buf.extend(chars);
    emit(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(f: Featurizer, doc: &str) -> Vec<String> {
        let mut out = Vec::new();
        Analyze::new(&f).terms(doc, |t| out.push(t.to_string()));
        out
    }

    #[test]
    fn analyzers_cut_text_as_scikit_learn_does() {
        let word = |lo, hi| Featurizer::Tfidf(Tfidf { ngram: [lo, hi], ..Default::default() });
        assert_eq!(
            terms(word(1, 2), "The cat's a_b x 42!"),
            ["the", "cat", "a_b", "42", "the cat", "cat a_b", "a_b 42"]
        );
        let wb = Featurizer::Tfidf(Tfidf { analyzer: Analyzer::CharWb, ngram: [2, 3], ..Default::default() });
        assert_eq!(terms(wb, "ab  c"), [" a", "ab", "b ", " ab", "ab ", " c", "c ", " c "]);
        let ch = Featurizer::Tfidf(Tfidf { analyzer: Analyzer::Char, ngram: [1, 2], ..Default::default() });
        assert_eq!(terms(ch, "a  b"), ["a", " ", "b", "a ", " b"]);
    }

    /// Reference values of scikit-learn's `murmurhash3_32(s, seed=0)` (signed).
    #[test]
    fn murmur3_matches_the_reference() {
        assert_eq!(murmur3_32(b"", 0) as i32, 0);
        assert_eq!(murmur3_32(b"foo", 0) as i32, -156908512);
        assert_eq!(murmur3_32(b"hello", 0) as i32, 613153351);
        assert_eq!(murmur3_32(b"The quick brown fox jumps over the lazy dog", 0) as i32, 776992547);
    }
}
