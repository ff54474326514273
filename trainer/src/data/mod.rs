//! Datasets: readers (MULAN ARFF, extreme-classification text), the synthetic
//! long-tail generator, the validation split and standardisation. A dataset is loaded
//! once per worker process and shared by every trial that names it ([`DatasetCache`]).

mod arff;
mod synthetic;
mod xc;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sweep_spec::{DatasetConfig, DatasetKind};

pub use arff::{read_arff_rows, read_mulan};
pub use synthetic::generate;
pub use xc::{read_xc, read_xc_rows};

/// Rows of one split: dense row-major features and a 0/1 label matrix.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub n: usize,
    pub x: Vec<f32>,
    pub y: Vec<u8>,
}

impl Split {
    fn take(&self, rows: &[usize], d: usize, l: usize) -> Split {
        let mut x = Vec::with_capacity(rows.len() * d);
        let mut y = Vec::with_capacity(rows.len() * l);
        for &r in rows {
            x.extend_from_slice(&self.x[r * d..(r + 1) * d]);
            y.extend_from_slice(&self.y[r * l..(r + 1) * l]);
        }
        Split { n: rows.len(), x, y }
    }
}

/// A train/test pair as read from disk, before the validation split.
#[derive(Debug, Clone)]
pub struct RawData {
    pub name: String,
    pub features: usize,
    pub label_names: Vec<String>,
    pub train: Split,
    pub test: Split,
    /// Dense numeric features are standardised; sparse bags of words are not.
    pub dense: bool,
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
}

/// A bad dataset: the trial's fault, never retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

pub fn err_at(path: &Path, line: usize, msg: impl std::fmt::Display) -> DataError {
    DataError(format!("{}:{line}: {msg}", path.display()))
}

pub use sweep_spec::data_dir;

fn resolve(p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() || p.exists() {
        p
    } else {
        data_dir().join(p)
    }
}

/// Loads (or generates) the dataset a trial names and carves the validation split.
pub fn load(cfg: &DatasetConfig) -> Result<Dataset, DataError> {
    let raw = match cfg.kind {
        DatasetKind::Synthetic => generate(cfg),
        DatasetKind::Mulan => {
            let (train, test, xml) = match (&cfg.name, &cfg.train) {
                (_, Some(train)) => {
                    let train = resolve(train);
                    let test =
                        cfg.test.as_deref().map(resolve).ok_or_else(|| DataError("dataset.test: missing".into()))?;
                    let xml = match &cfg.xml {
                        Some(x) => resolve(x),
                        None => sibling_xml(&train)?,
                    };
                    (train, test, xml)
                }
                (Some(name), None) => {
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                        return Err(DataError(format!("dataset.name: `{name}` is not a dataset name")));
                    }
                    let dir = data_dir().join("mulan").join(name);
                    (
                        dir.join(format!("{name}-train.arff")),
                        dir.join(format!("{name}-test.arff")),
                        dir.join(format!("{name}.xml")),
                    )
                }
                (None, None) => return Err(DataError("dataset: a mulan dataset needs `name` or `train`".into())),
            };
            read_mulan(&train, &test, &xml)?
        }
        DatasetKind::Xc => {
            let train = cfg.train.as_deref().map(resolve).ok_or_else(|| DataError("dataset.train: missing".into()))?;
            let test = cfg.test.as_deref().map(resolve).ok_or_else(|| DataError("dataset.test: missing".into()))?;
            read_xc(&train, &test)?
        }
    };
    split(raw, cfg.val_fraction, cfg.split_seed)
}

fn sibling_xml(train: &Path) -> Result<PathBuf, DataError> {
    let dir = train.parent().unwrap_or(Path::new("."));
    let stem = train.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let base = stem.strip_suffix("-train").unwrap_or(stem);
    Ok(dir.join(format!("{base}.xml")))
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

/// Carves `val_fraction` of the training rows (by `seed`) into a validation split and
/// standardises dense features with the remaining training rows' statistics.
pub fn split(raw: RawData, val_fraction: f64, seed: u64) -> Result<Dataset, DataError> {
    let (d, l) = (raw.features, raw.label_names.len());
    if l == 0 {
        return Err(DataError(format!("{}: the dataset has no labels", raw.name)));
    }
    let perm = SplitMix64(seed).permutation(raw.train.n);
    let n_val = ((raw.train.n as f64 * val_fraction) as usize).max(1);
    if n_val >= raw.train.n {
        return Err(DataError(format!("{}: {} training rows are too few to split", raw.name, raw.train.n)));
    }
    let mut val_rows = perm[..n_val].to_vec();
    let mut train_rows = perm[n_val..].to_vec();
    val_rows.sort_unstable();
    train_rows.sort_unstable();
    let mut train = raw.train.take(&train_rows, d, l);
    let mut val = raw.train.take(&val_rows, d, l);
    let mut test = raw.test;
    let mut standardized = None;
    if raw.dense {
        let (mean, std) = column_stats(&train.x, train.n, d);
        for s in [&mut train, &mut val, &mut test] {
            standardize(s, &mean, &std);
        }
        standardized = Some((mean, std));
    }
    let mut train_positives = vec![0u32; l];
    for row in train.y.chunks(l) {
        for (c, &v) in train_positives.iter_mut().zip(row) {
            *c += v as u32;
        }
    }
    Ok(Dataset {
        name: raw.name,
        features: d,
        labels: l,
        label_names: raw.label_names,
        train,
        val,
        test,
        train_positives,
        standardized,
    })
}

/// Standardises a split's features in place with training statistics.
pub fn standardize(s: &mut Split, mean: &[f64], std: &[f64]) {
    let d = mean.len();
    for row in s.x.chunks_mut(d) {
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

/// Datasets loaded by this process, keyed by their config: loaded once, shared by
/// every trial that names the same one.
#[derive(Default, Clone)]
pub struct DatasetCache {
    inner: Arc<Mutex<HashMap<String, Arc<Dataset>>>>,
}

impl DatasetCache {
    pub fn get(&self, cfg: &DatasetConfig) -> Result<Arc<Dataset>, DataError> {
        let key = serde_json::to_string(cfg).expect("json");
        if let Some(d) = self.inner.lock().expect("cache lock").get(&key) {
            return Ok(d.clone());
        }
        // Loaded outside the lock; two trials racing on a new dataset both load it once.
        let d = Arc::new(load(cfg)?);
        tracing::info!(dataset = %d.name, train = d.train.n, val = d.val.n, test = d.test.n, labels = d.labels, features = d.features, "dataset loaded");
        Ok(self.inner.lock().expect("cache lock").entry(key).or_insert(d).clone())
    }
}
