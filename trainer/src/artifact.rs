//! A trained model as it leaves the worker: `model.safetensors` (the best epoch's
//! weights) and `model.json` (the resolved config, label names, feature standardisation,
//! tuned thresholds, the metrics it reached). [`predict_file`] reads both back and scores
//! a data file exactly as the trainer scored its test split.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sweep_file::{DataSource, DatasetKind, TextFormat, TrialConfig};

use crate::data::{text, Columns, Features};
use tch::Device;

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
    /// How input files become the feature columns (nominal indicators).
    #[serde(default)]
    pub columns: Columns,
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
        crate::tensors::safetensors_bytes(model.named())
    }

    pub fn write_dir(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(WEIGHTS), &self.weights)?;
        std::fs::write(dir.join(MANIFEST), serde_json::to_vec_pretty(&self.manifest)?)?;
        Ok(())
    }
}

pub struct Loaded {
    pub manifest: Manifest,
    pub mlp: Mlp,
    /// The model's directory and the device it was loaded on.
    pub dir: std::path::PathBuf,
    pub device: Device,
}

pub fn load(dir: &Path, device: Device) -> anyhow::Result<Loaded> {
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .with_context(|| format!("read {}", dir.join(MANIFEST).display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{}: not a model manifest", dir.display()))?;
    let saved = tch::Tensor::read_safetensors(dir.join(WEIGHTS))
        .with_context(|| format!("read {}", dir.join(WEIGHTS).display()))?;
    let (features, labels) = (manifest.features as i64, manifest.label_names.len() as i64);
    // Text is sparse, unless a frozen encoder embedded it.
    let sparse = match manifest.config.dataset.kind() {
        DatasetKind::Xc => true,
        DatasetKind::Text => manifest.columns.encoder.is_none(),
        DatasetKind::Mulan | DatasetKind::Synthetic => false,
    };
    let mlp = Mlp::from_named(&saved, features, &manifest.config.model.hidden, labels, device, sparse)
        .with_context(|| format!("{}: not this model's weights", dir.join(WEIGHTS).display()))?;
    Ok(Loaded { manifest, mlp, dir: dir.to_path_buf(), device })
}

/// Reads rows to score from a file in the format the model's dataset came in (MULAN
/// ARFF laid out as in training, XC, or raw text featurized by the model's own fitted
/// featurizer), standardised as in training.
fn read_rows(loaded: &Loaded, input: &Path) -> anyhow::Result<Split> {
    let m = &loaded.manifest;
    let mut split = match &m.config.dataset.source {
        DataSource::Mulan(_) => data::read_arff_rows(input, &m.label_names, &m.columns.nominal)?,
        DataSource::Xc(_) => data::read_xc_rows(input, m.features, m.label_names.len())?,
        DataSource::Text(t) => {
            let format = t.format.or_else(|| TextFormat::from_path(&input.to_string_lossy())).with_context(|| {
                format!("{}: cannot tell its format (the model's data had none recorded)", input.display())
            })?;
            let rows = text::read_rows(input, format, &text::Fields::of(t, false))?;
            let labels = text::Labels::from_names(m.label_names.clone(), t.label_names.is_some());
            let y = labels.matrix(input, &rows, &mut Default::default())?;
            let docs: Vec<String> = rows.into_iter().map(|r| r.text).collect();
            Split { n: docs.len(), x: text_columns(loaded, t, &docs)?, y }
        }
        DataSource::Synthetic(_) => anyhow::bail!("a model trained on synthetic data has no input file format"),
    };
    if let Some(s) = &m.standardize {
        data::standardize(&mut split, &s.mean, &s.std);
    }
    let columns = match &split.x {
        Features::Dense(x) => x.len() / split.n.max(1),
        Features::Sparse(c) => c.cols,
    };
    anyhow::ensure!(
        columns == m.features,
        "{}: {columns} features per row, the model has {}",
        input.display(),
        m.features
    );
    Ok(split)
}

/// Where a frozen encoder's model directory is for `predict`: `encoder/` beside the
/// model's files (where `sweep model get` puts it), else the path the trial read it from.
pub const ENCODER_DIR: &str = "encoder";

/// The texts' columns as training made them: the fitted featurizer, or the frozen
/// encoder's pooled embeddings.
fn text_columns(loaded: &Loaded, t: &sweep_file::TextData, docs: &[String]) -> anyhow::Result<Features> {
    let m = &loaded.manifest;
    if let Some(settings) = &m.columns.encoder {
        let beside = loaded.dir.join(ENCODER_DIR);
        let dir = if beside.is_dir() {
            beside
        } else {
            let path = t.encoder.as_ref().and_then(|e| e.path.as_deref()).with_context(|| {
                format!("the model's frozen encoder is not at {} (sweep model get puts it there)", beside.display())
            })?;
            data::resolve(path)
        };
        let embedder = crate::encoder::Embedder::load(&dir, settings, loaded.device)?;
        return Ok(Features::Dense(embedder.embed(docs)?));
    }
    let fitted = m.columns.text.as_ref().context("the model has no fitted featurizer")?;
    Ok(Features::Sparse(fitted.transform(docs)))
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
    let probs = crate::score::probabilities(&loaded.mlp, &split, loaded.manifest.features);
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
