//! Datasets: readers (MULAN ARFF, extreme-classification text, raw text with its
//! featurizer), the synthetic long-tail generator, the validation split and
//! standardisation. A dataset is read (and featurized) once per worker process, and a
//! featurized text dataset once per machine ([`DatasetCache`]); every trial that names it
//! shares it. Text and XC rows stay sparse ([`Csr`]); nothing builds a dense
//! `[rows, features]` matrix of them.

mod arff;
mod cache;
mod csr;
pub mod featurize;
mod parquet;
pub mod stratify;
mod synthetic;
pub mod text;
mod xc;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sweep_file::{DataSource, DatasetConfig, SplitMethod};

pub use arff::{read_arff_rows, read_mulan};
pub use csr::{Bag, Csr};
pub use synthetic::generate;
pub use xc::{read_xc, read_xc_rows};

/// A split's feature rows: dense row-major (`rows x features`), or sparse.
#[derive(Debug, Clone)]
pub enum Features {
    Dense(Vec<f32>),
    Sparse(Csr),
}

impl Features {
    fn take(&self, rows: &[usize], d: usize) -> Features {
        match self {
            Features::Dense(x) => {
                let mut out = Vec::with_capacity(rows.len() * d);
                for &r in rows {
                    out.extend_from_slice(&x[r * d..(r + 1) * d]);
                }
                Features::Dense(out)
            }
            Features::Sparse(c) => Features::Sparse(c.take(rows)),
        }
    }
}

/// Rows of one split: features and a 0/1 label matrix (row-major, `rows x labels`).
#[derive(Debug, Clone)]
pub struct Split {
    pub n: usize,
    pub x: Features,
    pub y: Vec<u8>,
}

impl Split {
    fn take(&self, rows: &[usize], d: usize, l: usize) -> Split {
        let mut y = Vec::with_capacity(rows.len() * l);
        for &r in rows {
            y.extend_from_slice(&self.y[r * l..(r + 1) * l]);
        }
        Split { n: rows.len(), x: self.x.take(rows, d), y }
    }

    /// The dense feature values, if the split is dense.
    pub fn dense(&self) -> Option<&[f32]> {
        match &self.x {
            Features::Dense(x) => Some(x),
            Features::Sparse(_) => None,
        }
    }
}

/// A dataset as read from disk, before the validation split.
#[derive(Debug, Clone)]
pub struct RawData {
    pub name: String,
    pub features: usize,
    pub label_names: Vec<String>,
    pub train: Split,
    /// The source's own validation split, if it has one (else it is carved from train).
    pub val: Option<Split>,
    pub test: Split,
    /// Dense numeric features are standardised; bags of words are not.
    pub dense: bool,
    /// How a raw input file becomes these columns (what a model needs to score one).
    pub columns: Columns,
    /// Labels of test or validation rows that training never has, with their rows.
    pub unseen_labels: BTreeMap<String, usize>,
}

/// How the model's input columns are made from a raw file, besides standardisation:
/// what `predict` needs to read a file the way training read its data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    /// MULAN: each nominal feature's values that have an indicator column, in order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nominal: BTreeMap<String, Vec<String>>,
    /// Text: the fitted featurizer (vocabulary, idf, settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<featurize::Fitted>,
    /// Text through a frozen encoder: its settings (the model directory is the
    /// dataset's `encoder` file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<sweep_file::EncoderFeatures>,
}

#[derive(Debug)]
pub struct Dataset {
    pub name: String,
    pub features: usize,
    pub labels: usize,
    pub label_names: Vec<String>,
    pub train: Split,
    pub val: Split,
    pub test: Split,
    /// Positives per label in the training split (after the validation carve-out).
    pub train_positives: Vec<u32>,
    /// The training rows' per-feature (mean, std) applied to every split (dense data).
    pub standardized: Option<(Vec<f64>, Vec<f64>)>,
    /// How raw input files become the feature columns.
    pub columns: Columns,
    /// Labels of test or validation rows that training never has (not scored), with rows.
    pub unseen_labels: BTreeMap<String, usize>,
}

impl Dataset {
    /// Labels with training positives and none in validation: their thresholds and
    /// validation F1 are guesses (`dataset.split: iterative` keeps this near zero).
    pub fn labels_without_val_positives(&self) -> usize {
        let l = self.labels;
        let mut seen = vec![false; l];
        for row in self.val.y.chunks(l) {
            for (s, &v) in seen.iter_mut().zip(row) {
                *s |= v != 0;
            }
        }
        seen.iter().zip(&self.train_positives).filter(|(s, &n)| !**s && n > 0).count()
    }
}

/// A bad dataset: the trial's fault, never retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

pub fn err_at(path: &Path, line: usize, msg: impl std::fmt::Display) -> DataError {
    DataError(format!("{}:{line}: {msg}", path.display()))
}

/// A file's size in bytes for [`check_dense`]; one that cannot be read counts as empty
/// (its reader reports it).
pub fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A panic's message, when it has one, for the error that reports it (a reader's, or the
/// worker's).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// What any file may be given densely, however small: 64 MiB.
pub const DENSE_FLOOR: u64 = 64 << 20;

/// Refuses `rows` x `cols` elements of `bytes_each` bytes held densely beyond what a
/// reader may give a file of `file_bytes`: 64 times its bytes, or [`DENSE_FLOOR`],
/// whichever is more (a sparse MULAN file held densely takes 12-56 times its bytes). A
/// header declaring more than its file can hold (a 40-byte file declaring a trillion
/// labels, a sparse file declaring millions of attributes) is refused before the memory
/// is taken, not after the worker died; `line`, where one is being read.
pub fn check_dense(
    path: &Path,
    line: Option<usize>,
    what: &str,
    (rows, cols, bytes_each): (usize, usize, usize),
    file_bytes: u64,
) -> Result<(), DataError> {
    let need = rows as u128 * cols as u128 * bytes_each as u128;
    if need <= u128::from(file_bytes.saturating_mul(64).max(DENSE_FLOOR)) {
        return Ok(());
    }
    let msg = format!(
        "{what}: {rows} x {cols} would take {} MiB, more than this reader gives a file of {file_bytes} bytes \
         (64 times its size, at least 64 MiB): refused (does a header declare more than the file holds?)",
        need >> 20
    );
    Err(match line {
        Some(line) => err_at(path, line, msg),
        None => DataError(format!("{}: {msg}", path.display())),
    })
}

pub use sweep_file::data_dir;

pub(crate) fn resolve(p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() || p.exists() {
        p
    } else {
        data_dir().join(p)
    }
}

/// Loads (or generates) the dataset a trial names and carves the validation split.
/// Paths are local here: a worker has already put its fetched blobs in their place.
pub fn load(cfg: &DatasetConfig) -> Result<Dataset, DataError> {
    split(&read(cfg)?, &SplitSettings::of(cfg))
}

/// Reads (or generates) a dataset, featurizing text, before any validation split.
pub fn read(cfg: &DatasetConfig) -> Result<RawData, DataError> {
    if let Some(role) = cfg.blobs.keys().next() {
        return Err(DataError(format!(
            "dataset.blobs.{role}: not fetched (a worker reads bound data through its blob cache)"
        )));
    }
    let need = |p: &Option<String>, field: &str| {
        p.as_deref().map(resolve).ok_or_else(|| DataError(format!("dataset.{field}: missing")))
    };
    Ok(match &cfg.source {
        DataSource::Synthetic(s) => generate(s),
        DataSource::Mulan(m) => {
            let (train, test, xml) = match (&m.name, &m.train) {
                (_, Some(train)) => {
                    let train = resolve(train);
                    let test = need(&m.test, "test")?;
                    let xml = m.xml.as_deref().map_or_else(|| sibling_xml(&train), resolve);
                    (train, test, xml)
                }
                (Some(name), None) => {
                    let dir = data_dir().join("mulan").join(name);
                    let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
                    (file("-train.arff"), file("-test.arff"), file(".xml"))
                }
                (None, None) => return Err(DataError("dataset: a mulan dataset needs `name` or `train`".into())),
            };
            read_mulan(&train, &test, &xml)?
        }
        DataSource::Xc(x) => read_xc(&need(&x.train, "train")?, &need(&x.test, "test")?)?,
        DataSource::Text(t) => {
            let (train, test) = (need(&t.train, "train")?, need(&t.test, "test")?);
            let (val, label_names) = (t.val.as_deref().map(resolve), t.label_names.as_deref().map(resolve));
            let files = text::TextFiles {
                train: &train,
                val: val.as_deref(),
                test: &test,
                label_names: label_names.as_deref(),
            };
            text::read_text(t, files)?
        }
    })
}

fn sibling_xml(train: &Path) -> PathBuf {
    let dir = train.parent().unwrap_or(Path::new("."));
    let stem = train.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let base = stem.strip_suffix("-train").unwrap_or(stem);
    dir.join(format!("{base}.xml"))
}

/// splitmix64: tiny, fully specified, and reimplemented in `bench/parity.py` so both
/// sides carve the same validation rows.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher-Yates permutation of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// How train is split for validation (when the source has no validation split).
#[derive(Debug, Clone, Copy)]
pub struct SplitSettings {
    pub val_fraction: f64,
    pub seed: u64,
    pub method: SplitMethod,
    /// Cross-validation: (folds, the fold validated on); folds are always stratified.
    pub cv: Option<(u32, u32)>,
    /// A refit trial's final model: every training row trains, none validates.
    pub refit: bool,
}

impl SplitSettings {
    pub fn of(cfg: &DatasetConfig) -> SplitSettings {
        let (cv, refit) = match (cfg.cv_folds, cfg.cv_refit) {
            (0, _) => (None, false),
            (_, true) => (None, true),
            (k, false) => (Some((k, cfg.fold)), false),
        };
        SplitSettings { val_fraction: cfg.val_fraction, seed: cfg.split_seed, method: cfg.split, cv, refit }
    }

    /// A random split (what every configuration without `split:` gets).
    pub fn random(val_fraction: f64, seed: u64) -> SplitSettings {
        SplitSettings { val_fraction, seed, method: SplitMethod::Random, cv: None, refit: false }
    }

    /// The training rows and the validation rows (each ascending) of `train`.
    pub fn rows(&self, train: &Split, labels: usize) -> (Vec<usize>, Vec<usize>) {
        if self.refit {
            return ((0..train.n).collect(), Vec::new());
        }
        if let Some((folds, fold)) = self.cv {
            // k stratified folds of the seed: the same rows for every configuration.
            let fractions = vec![1.0 / f64::from(folds); folds as usize];
            let subset = stratify::iterative(&train.y, train.n, labels, &fractions, self.seed);
            let (val, rest): (Vec<usize>, Vec<usize>) = (0..train.n).partition(|&r| subset[r] == fold as usize);
            return (rest, val);
        }
        match self.method {
            SplitMethod::Random => {
                let perm = SplitMix64(self.seed).permutation(train.n);
                let n_val = ((train.n as f64 * self.val_fraction) as usize).max(1).min(train.n);
                let (mut val_rows, mut train_rows) = (perm[..n_val].to_vec(), perm[n_val..].to_vec());
                val_rows.sort_unstable();
                train_rows.sort_unstable();
                (train_rows, val_rows)
            }
            SplitMethod::Iterative => {
                let f = self.val_fraction;
                let subset = stratify::iterative(&train.y, train.n, labels, &[1.0 - f, f], self.seed);
                (0..train.n).partition(|&r| subset[r] == 0)
            }
        }
    }
}

/// The validation split: the source's own, or `val_fraction` of the training rows
/// carved off (by a seeded permutation or by iterative stratification); dense features
/// are standardised with the remaining training rows' statistics.
pub fn split(raw: &RawData, how: &SplitSettings) -> Result<Dataset, DataError> {
    let (d, l) = (raw.features, raw.label_names.len());
    if l == 0 {
        return Err(DataError(format!("{}: the dataset has no labels", raw.name)));
    }
    let (mut train, mut val) = match &raw.val {
        Some(_) if how.cv.is_some() || how.refit => {
            return Err(DataError(format!(
                "{}: dataset.cv: the data has its own validation split; folds are carved from train",
                raw.name
            )))
        }
        Some(val) => (raw.train.clone(), val.clone()),
        None => {
            let (train_rows, val_rows) = how.rows(&raw.train, l);
            if train_rows.is_empty() || (val_rows.is_empty() && !how.refit) {
                return Err(DataError(format!("{}: {} training rows are too few to split", raw.name, raw.train.n)));
            }
            (raw.train.take(&train_rows, d, l), raw.train.take(&val_rows, d, l))
        }
    };
    let mut test = raw.test.clone();
    let mut standardized = None;
    if raw.dense {
        if let Some(x) = train.dense() {
            let (mean, std) = column_stats(x, train.n, d);
            for s in [&mut train, &mut val, &mut test] {
                standardize(s, &mean, &std);
            }
            standardized = Some((mean, std));
        }
    }
    let mut train_positives = vec![0u32; l];
    for row in train.y.chunks(l) {
        for (c, &v) in train_positives.iter_mut().zip(row) {
            *c += v as u32;
        }
    }
    Ok(Dataset {
        name: raw.name.clone(),
        features: d,
        labels: l,
        label_names: raw.label_names.clone(),
        train,
        val,
        test,
        train_positives,
        standardized,
        columns: raw.columns.clone(),
        unseen_labels: raw.unseen_labels.clone(),
    })
}

/// Standardises a split's dense features in place with training statistics.
pub fn standardize(s: &mut Split, mean: &[f64], std: &[f64]) {
    let Features::Dense(x) = &mut s.x else { return };
    let d = mean.len();
    for row in x.chunks_mut(d) {
        for ((v, m), sd) in row.iter_mut().zip(mean).zip(std) {
            *v = ((*v as f64 - m) / sd) as f32;
        }
    }
}

/// Per-column mean and population standard deviation (1 where a column is constant).
fn column_stats(x: &[f32], n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0f64; d];
    for row in x.chunks(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0f64; d];
    for row in x.chunks(d) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let std = var.iter().map(|s| (s / n as f64).sqrt()).map(|s| if s < 1e-12 { 1.0 } else { s }).collect();
    (mean, std)
}

/// Datasets this process has read: raw (before the validation split, so replicas that
/// split differently share one read and one featurization) and split (what trials get).
/// With a directory, featurized text datasets are also kept on disk by the content of
/// their files and their settings, so other workers on the machine (and restarts) reuse
/// them; the directory's own size limit evicts them with everything else in it.
#[derive(Default, Clone)]
pub struct DatasetCache {
    raw: Arc<Mutex<HashMap<String, Arc<RawData>>>>,
    split: Arc<Mutex<HashMap<String, Arc<Dataset>>>>,
    dir: Option<PathBuf>,
}

impl DatasetCache {
    /// A cache that also keeps featurized text under `dir`.
    pub fn with_dir(dir: PathBuf) -> DatasetCache {
        DatasetCache { dir: Some(dir), ..Default::default() }
    }

    pub fn get(&self, cfg: &DatasetConfig) -> Result<Arc<Dataset>, DataError> {
        let key = serde_json::to_string(cfg).expect("json");
        if let Some(d) = self.split.lock().expect("cache lock").get(&key) {
            return Ok(d.clone());
        }
        // Loaded outside the lock; two trials racing on a new dataset both load it once.
        let raw = self.raw(cfg)?;
        let d = Arc::new(split(&raw, &SplitSettings::of(cfg))?);
        tracing::info!(dataset = %d.name, train = d.train.n, val = d.val.n, test = d.test.n, labels = d.labels, features = d.features,
            split = cfg.split.as_str(), labels_without_val_positives = d.labels_without_val_positives(), "dataset loaded");
        Ok(self.split.lock().expect("cache lock").entry(key).or_insert(d).clone())
    }

    fn raw(&self, cfg: &DatasetConfig) -> Result<Arc<RawData>, DataError> {
        let key = serde_json::to_string(&cfg.source).expect("json");
        if let Some(r) = self.raw.lock().expect("cache lock").get(&key) {
            return Ok(r.clone());
        }
        let raw = match (&self.dir, &cfg.source) {
            (Some(dir), DataSource::Text(_)) => cache::read_or_featurize(dir, cfg)?,
            _ => read(cfg)?,
        };
        Ok(self.raw.lock().expect("cache lock").entry(key).or_insert(Arc::new(raw)).clone())
    }
}
