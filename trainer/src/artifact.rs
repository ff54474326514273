//! A trained model as it leaves the worker: `model.safetensors` (the best epoch's
//! weights) and `model.json` (the resolved config, label names, feature standardisation,
//! tuned thresholds, the metrics it reached). [`predict_file`] reads both back and scores
//! a data file exactly as the trainer scored its test split.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sweep_spec::{DatasetKind, TrialConfig};
use tch::{Device, Tensor};

use crate::data::{self, Split};
use crate::metrics;
use crate::model::Mlp;

pub const WEIGHTS: &str = "model.safetensors";
pub const MANIFEST: &str = "model.json";

/// Per-feature mean and standard deviation of the training rows (dense data only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardize {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub config: TrialConfig,
    pub label_names: Vec<String>,
    pub features: usize,
    pub standardize: Option<Standardize>,
    /// Tuned on validation: `global` (what `*.f1_micro_tuned` uses) and one per label
    /// (what `*.f1_macro_tuned` uses).
    pub threshold_global: f32,
    pub thresholds: Vec<f32>,
    pub metrics: BTreeMap<String, f64>,
}

/// The two files of a model, in memory.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub weights: Vec<u8>,
    pub manifest: Manifest,
}

impl ModelFiles {
    /// The weights of `model` as safetensors bytes.
    pub fn weights_of(model: &Mlp) -> anyhow::Result<Vec<u8>> {
        safetensors_bytes(model.named())
    }

    pub fn write_dir(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(WEIGHTS), &self.weights)?;
        std::fs::write(dir.join(MANIFEST), serde_json::to_vec_pretty(&self.manifest)?)?;
        Ok(())
    }
}

/// A model read back from its directory.
/// Named tensors as safetensors bytes (sorted by name; host copies).
pub fn safetensors_bytes(mut named: Vec<(String, Tensor)>) -> anyhow::Result<Vec<u8>> {
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let cpu: Vec<(String, Tensor)> = named.into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))).collect();
    let tmp = scratch_path("out");
    Tensor::write_safetensors(&cpu, &tmp)?;
    let bytes = std::fs::read(&tmp);
    let _ = std::fs::remove_file(&tmp);
    Ok(bytes?)
}

/// Named tensors from safetensors bytes.
pub fn safetensors_from_bytes(bytes: &[u8]) -> anyhow::Result<Vec<(String, Tensor)>> {
    let tmp = scratch_path("in");
    std::fs::write(&tmp, bytes)?;
    let named = Tensor::read_safetensors(&tmp);
    let _ = std::fs::remove_file(&tmp);
    Ok(named?)
}

/// A temporary file of this thread's (libtorch reads and writes safetensors by path).
fn scratch_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "sweep-{what}-{}-{:?}.safetensors",
        std::process::id(),
        std::thread::current().id()
    ))
}

pub struct Loaded {
    pub manifest: Manifest,
    pub mlp: Mlp,
}

pub fn load(dir: &Path, device: Device) -> anyhow::Result<Loaded> {
    use anyhow::Context;
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .with_context(|| format!("read {}", dir.join(MANIFEST).display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{}: not a model manifest", dir.display()))?;
    let saved =
        Tensor::read_safetensors(dir.join(WEIGHTS)).with_context(|| format!("read {}", dir.join(WEIGHTS).display()))?;
    let (features, labels) = (manifest.features as i64, manifest.label_names.len() as i64);
    let mlp = Mlp::from_named(&saved, features, &manifest.config.model.hidden, labels, device)
        .with_context(|| format!("{}: not this model's weights", dir.join(WEIGHTS).display()))?;
    Ok(Loaded { manifest, mlp })
}

/// Reads rows to score from a file in the format the model's dataset came in (MULAN
/// ARFF with the model's labels, or XC text), standardised as in training.
fn read_rows(loaded: &Loaded, input: &Path) -> anyhow::Result<Split> {
    let m = &loaded.manifest;
    let mut split = match m.config.dataset.kind {
        DatasetKind::Mulan => data::read_arff_rows(input, &m.label_names)?,
        DatasetKind::Xc => data::read_xc_rows(input, m.features, m.label_names.len())?,
        DatasetKind::Synthetic => anyhow::bail!("a model trained on synthetic data has no input file format"),
    };
    if let Some(s) = &m.standardize {
        data::standardize(&mut split, &s.mean, &s.std);
    }
    anyhow::ensure!(
        split.x.len() == split.n * m.features,
        "{}: {} features per row, the model has {}",
        input.display(),
        split.x.len() / split.n.max(1),
        m.features
    );
    Ok(split)
}

/// How `predict_file` decides labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdChoice {
    /// The global threshold tuned on validation (as `test.f1_micro_tuned`).
    Global,
    /// One tuned threshold per label (as `test.f1_macro_tuned`).
    PerLabel,
}

/// Scores every row of `input`; writes one JSON line per row: the labels at or above
/// threshold and their probabilities, and the row's true labels when the file has them.
/// Returns the number of rows.
pub fn predict_file(
    dir: &Path,
    input: &Path,
    out: &Path,
    device: Device,
    choice: ThresholdChoice,
) -> anyhow::Result<usize> {
    use std::io::Write;
    let loaded = load(dir, device)?;
    let split = read_rows(&loaded, input)?;
    let (l, names) = (loaded.manifest.label_names.len(), &loaded.manifest.label_names);
    let x = Tensor::from_slice(&split.x).view([split.n as i64, loaded.manifest.features as i64]).to_device(device);
    let probs = crate::train::probabilities(&loaded.mlp, &x);
    let thresholds = match choice {
        ThresholdChoice::Global => vec![loaded.manifest.threshold_global; l],
        ThresholdChoice::PerLabel => loaded.manifest.thresholds.clone(),
    };
    let pred = metrics::predict(&probs, &thresholds);
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    for r in 0..split.n {
        let row = r * l..(r + 1) * l;
        let chosen: Vec<usize> = (0..l).filter(|&j| pred[row.start + j] == 1).collect();
        let line = serde_json::json!({
            "row": r,
            "labels": chosen.iter().map(|&j| &names[j]).collect::<Vec<_>>(),
            "probs": chosen.iter().map(|&j| probs[row.start + j]).collect::<Vec<_>>(),
            "true": (0..l).filter(|&j| split.y[row.start + j] == 1).map(|j| &names[j]).collect::<Vec<_>>(),
        });
        writeln!(w, "{line}")?;
    }
    w.flush()?;
    Ok(split.n)
}
