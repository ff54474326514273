//! The trainer: one trial, or several trials that share a dataset (trained one after
//! another today; the API leaves room to fuse them into one batched model on a GPU).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;
use sweep_spec::TrialConfig;
use tch::{nn, Device, Kind, Tensor};

use crate::data::{Dataset, SplitMix64};
use crate::loss::Loss;
use crate::metrics::{self, Thresholds};
use crate::model::Mlp;

/// Why a trial did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The trial's own fault (bad data, NaN loss): not retried.
    #[error("{0}")]
    User(String),
    /// Might pass on another try (out of memory, a libtorch error).
    #[error("{0}")]
    Transient(String),
    #[error("cancelled")]
    Cancelled,
}

/// How the caller steers a running trial from another thread: `cancel` stops it at the
/// next batch with no result; `finish` ends it after the current epoch with the result it
/// reached (the best epoch so far), as early stopping would.
#[derive(Debug, Default)]
pub struct Control {
    pub cancel: AtomicBool,
    pub finish: AtomicBool,
}

impl Control {
    /// A control whose trial is cancelled from the start (tests).
    pub fn cancelled() -> Control {
        Control { cancel: AtomicBool::new(true), finish: AtomicBool::new(false) }
    }
}

/// One epoch's numbers, streamed to the agent.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    pub epoch: u32,
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    /// The flat map: `val.*` and `test.*` at the best epoch, `train.loss`, timings.
    pub metrics: BTreeMap<String, f64>,
    pub history: Vec<EpochReport>,
    pub best_epoch: u32,
    pub seconds: f64,
    pub samples_per_s: f64,
    pub threshold_global: f32,
    pub device: String,
    /// Whether it stopped before its last epoch because it was told to finish (ASHA).
    pub stopped_early: bool,
    /// The best epoch's model (weights and what scoring needs), for the artifact.
    #[serde(skip)]
    pub model: Option<crate::artifact::ModelFiles>,
}

/// Picks the device: `auto` is CUDA when libtorch sees a GPU.
pub fn device(name: &str) -> anyhow::Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            anyhow::ensure!(tch::Cuda::is_available(), "--device cuda: libtorch sees no CUDA device");
            Ok(Device::Cuda(0))
        }
        "auto" => Ok(Device::cuda_if_available()),
        other => anyhow::bail!("--device: `{other}` is not auto, cpu or cuda"),
    }
}

/// Trains several trials that share `dataset`. Results come back in config order;
/// `progress` gets (index, epoch report).
pub fn train_trials(
    dataset: &Dataset,
    configs: &[TrialConfig],
    device: Device,
    progress: &mut dyn FnMut(usize, &EpochReport),
    control: &Control,
) -> Vec<Result<TrialResult, TrainError>> {
    configs
        .iter()
        .enumerate()
        .map(|(i, cfg)| train_one(dataset, cfg, device, &mut |r| progress(i, r), control))
        .collect()
}

fn to_tensor(x: &[f32], rows: usize, cols: usize, device: Device) -> Tensor {
    Tensor::from_slice(x).view([rows as i64, cols as i64]).to_device(device)
}

fn labels_tensor(y: &[u8], rows: usize, cols: usize, device: Device) -> Tensor {
    Tensor::from_slice(y).view([rows as i64, cols as i64]).to_device(device).to_kind(Kind::Float)
}

/// Probabilities (row-major) of the model on rows `x`, computed as [`evaluate`] does
/// (the same chunks, the same kernels), so a saved model scores a file exactly as the
/// trainer scored its test split.
pub fn probabilities(model: &Mlp, x: &Tensor) -> Vec<f32> {
    tch::no_grad(|| {
        let n = x.size()[0];
        let mut probs = Vec::new();
        let mut start = 0;
        while start < n {
            let len = EVAL_CHUNK.min(n - start);
            probs.push(model.forward(&x.narrow(0, start, len), false).sigmoid());
            start += len;
        }
        let probs = Tensor::cat(&probs, 0).to_device(Device::Cpu).contiguous().view([-1]);
        Vec::<f32>::try_from(&probs).expect("probabilities to host")
    })
}

/// Rows scored at once.
const EVAL_CHUNK: i64 = 8192;

/// Probabilities (row-major) and mean loss of the model on a split.
fn evaluate(model: &Mlp, x: &Tensor, y: &Tensor, loss: &Loss) -> (Vec<f32>, f64) {
    tch::no_grad(|| {
        let n = x.size()[0];
        let mut probs = Vec::new();
        let mut loss_sum = Tensor::zeros([], (Kind::Float, x.device()));
        let mut start = 0;
        while start < n {
            let len = EVAL_CHUNK.min(n - start);
            let xb = x.narrow(0, start, len);
            let yb = y.narrow(0, start, len);
            let logits = model.forward(&xb, false);
            loss_sum += loss.elementwise(&logits, &yb).sum(Kind::Float);
            probs.push(logits.sigmoid());
            start += len;
        }
        let probs = Tensor::cat(&probs, 0).to_device(Device::Cpu).contiguous().view([-1]);
        let v: Vec<f32> = Vec::<f32>::try_from(&probs).expect("probabilities to host");
        let mean_loss = f64::try_from(loss_sum).unwrap_or(f64::NAN) / (n * y.size()[1]).max(1) as f64;
        (v, mean_loss)
    })
}

fn objective_of(metrics: &BTreeMap<String, f64>, name: &str) -> Result<f64, TrainError> {
    metrics
        .get(name)
        .copied()
        .ok_or_else(|| TrainError::User(format!("metric `{name}` is not reported for this dataset")))
}

/// One trial while it trains: its data on the device, model, optimiser and loss weights.
struct Run<'a> {
    ds: &'a Dataset,
    cfg: &'a TrialConfig,
    device: Device,
    xtr: Tensor,
    ytr: Tensor,
    xva: Tensor,
    yva: Tensor,
    loss: Loss,
    vs: nn::VarStore,
    model: Mlp,
    opt: nn::Optimizer,
}

impl<'a> Run<'a> {
    /// Seeds libtorch and builds everything in the order a PyTorch script does, so the
    /// same seed draws the same initial weights.
    fn new(ds: &'a Dataset, cfg: &'a TrialConfig, device: Device) -> Result<Run<'a>, TrainError> {
        let (d, l) = (ds.features, ds.labels);
        tch::manual_seed(cfg.train.seed as i64);
        let xtr = to_tensor(&ds.train.x, ds.train.n, d, device);
        let ytr = labels_tensor(&ds.train.y, ds.train.n, l, device);
        let xva = to_tensor(&ds.val.x, ds.val.n, d, device);
        let yva = labels_tensor(&ds.val.y, ds.val.n, l, device);
        let loss = Loss::new(&cfg.loss, &ds.train_positives, ds.train.n, device);
        let vs = nn::VarStore::new(device);
        let model = Mlp::new(&vs.root(), d as i64, &cfg.model.hidden, l as i64, cfg.model.dropout);
        let adamw = nn::AdamW { wd: cfg.train.weight_decay, ..Default::default() };
        let opt = nn::OptimizerConfig::build(adamw, &vs, cfg.train.lr)
            .map_err(|e| TrainError::Transient(format!("optimizer: {e}")))?;
        Ok(Run { ds, cfg, device, xtr, ytr, xva, yva, loss, vs, model, opt })
    }

    /// One pass over the training split in this epoch's seeded order; the mean batch loss.
    fn train_epoch(&mut self, epoch: u32, cancel: &AtomicBool) -> Result<f64, TrainError> {
        let n = self.ds.train.n;
        let bs = (self.cfg.train.batch_size as usize).min(n);
        let seed = self.cfg.train.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
        let perm: Vec<i64> = SplitMix64(seed).permutation(n).iter().map(|&i| i as i64).collect();
        let perm = Tensor::from_slice(&perm).to_device(self.device);
        let mut loss_sum = Tensor::zeros([], (Kind::Float, self.device));
        let (mut batches, mut start) = (0i64, 0usize);
        while start < n {
            if cancel.load(Ordering::Relaxed) {
                return Err(TrainError::Cancelled);
            }
            let len = bs.min(n - start);
            let idx = perm.narrow(0, start as i64, len as i64);
            let logits = self.model.forward(&self.xtr.index_select(0, &idx), true);
            let yb = self.ytr.index_select(0, &idx);
            let loss = self.loss.mean(&logits, &yb);
            self.opt.zero_grad();
            loss.backward();
            if self.cfg.train.grad_clip > 0.0 {
                self.opt.clip_grad_norm(self.cfg.train.grad_clip);
            }
            self.opt.step();
            loss_sum += loss.detach();
            batches += 1;
            start += len;
        }
        let train_loss = f64::try_from(&loss_sum).unwrap_or(f64::NAN) / batches as f64;
        if !train_loss.is_finite() {
            return Err(TrainError::User(format!(
                "loss became {train_loss} in epoch {epoch}; lower train.lr or loss.class_weight.cap"
            )));
        }
        Ok(train_loss)
    }

    /// Validation metrics now (thresholds tuned on validation itself).
    fn validate(&self) -> BTreeMap<String, f64> {
        let l = self.ds.labels;
        let (val_probs, val_loss) = evaluate(&self.model, &self.xva, &self.yva, &self.loss);
        let thresholds = metrics::tune_checked(&val_probs, &self.ds.val.y, l);
        let mut m = metrics::report("val", &val_probs, &self.ds.val.y, l, &thresholds, &self.ds.train_positives);
        m.insert("val.loss".into(), val_loss);
        m
    }

    fn snapshot(&self) -> Vec<Tensor> {
        tch::no_grad(|| self.vs.trainable_variables().iter().map(|t| t.copy()).collect())
    }

    fn restore(&self, weights: &[Tensor]) {
        tch::no_grad(|| {
            for (var, w) in self.vs.trainable_variables().iter_mut().zip(weights) {
                var.copy_(w);
            }
        });
    }

    /// Validation and test metrics of the current weights, with thresholds tuned on
    /// validation and applied to test.
    fn final_metrics(&self) -> (BTreeMap<String, f64>, Thresholds) {
        let (ds, l) = (self.ds, self.ds.labels);
        let (val_probs, val_loss) = evaluate(&self.model, &self.xva, &self.yva, &self.loss);
        let thresholds: Thresholds = metrics::tune_checked(&val_probs, &ds.val.y, l);
        let xte = to_tensor(&ds.test.x, ds.test.n, ds.features, self.device);
        let yte = labels_tensor(&ds.test.y, ds.test.n, l, self.device);
        let (test_probs, test_loss) = evaluate(&self.model, &xte, &yte, &self.loss);
        let mut m = metrics::report("val", &val_probs, &ds.val.y, l, &thresholds, &ds.train_positives);
        m.extend(metrics::report("test", &test_probs, &ds.test.y, l, &thresholds, &ds.train_positives));
        m.insert("val.loss".into(), val_loss);
        m.insert("test.loss".into(), test_loss);
        m.insert("threshold_global".into(), thresholds.global as f64);
        (m, thresholds)
    }
}

/// Trains one trial: epochs until `train.epochs` or early stopping on the objective,
/// then the best epoch's weights are restored and evaluated. Deterministic for a given
/// seed on CPU.
pub fn train_one(
    ds: &Dataset,
    cfg: &TrialConfig,
    device: Device,
    progress: &mut dyn FnMut(&EpochReport),
    control: &Control,
) -> Result<TrialResult, TrainError> {
    let started = Instant::now();
    let mut run = Run::new(ds, cfg, device)?;
    let mut best: Option<(f64, u32, Vec<Tensor>)> = None;
    let (mut history, mut since_best, mut train_seconds) = (Vec::new(), 0u32, 0.0);
    let mut stopped_early = false;
    for epoch in 1..=cfg.train.epochs {
        let t0 = Instant::now();
        let train_loss = run.train_epoch(epoch, &control.cancel)?;
        let epoch_train_s = t0.elapsed().as_secs_f64();
        train_seconds += epoch_train_s;
        let mut m = run.validate();
        m.insert("train.loss".into(), train_loss);
        m.insert("epoch_seconds".into(), t0.elapsed().as_secs_f64());
        m.insert("samples_per_s".into(), ds.train.n as f64 / epoch_train_s.max(1e-9));
        let objective = objective_of(&m, &cfg.metric.name)?;
        let report = EpochReport { epoch, metrics: m };
        progress(&report);
        history.push(report);
        if best.as_ref().is_none_or(|(b, _, _)| cfg.metric.goal.better(objective, *b)) {
            best = Some((objective, epoch, run.snapshot()));
            since_best = 0;
        } else {
            since_best += 1;
            if cfg.train.patience > 0 && since_best >= cfg.train.patience {
                break;
            }
        }
        if control.finish.load(Ordering::Relaxed) {
            stopped_early = epoch < cfg.train.epochs;
            break;
        }
    }
    let (_, best_epoch, weights) = best.ok_or_else(|| TrainError::User("no epoch ran".into()))?;
    run.restore(&weights);
    let (mut metrics, thresholds) = run.final_metrics();
    let weights = crate::artifact::ModelFiles::weights_of(&run.vs)
        .map_err(|e| TrainError::Transient(format!("model weights: {e}")))?;
    if let Some(h) = history.iter().find(|h| h.epoch == best_epoch) {
        metrics.insert("train.loss".into(), h.metrics["train.loss"]);
    }
    metrics.insert("best_epoch".into(), best_epoch as f64);
    let samples_per_s = (ds.train.n * history.len()) as f64 / train_seconds.max(1e-9);
    metrics.insert("samples_per_s".into(), samples_per_s);
    let seconds = started.elapsed().as_secs_f64();
    metrics.insert("seconds".into(), seconds);
    let manifest = crate::artifact::Manifest {
        config: cfg.clone(),
        label_names: ds.label_names.clone(),
        features: ds.features,
        standardize: ds.standardized.clone().map(|(mean, std)| crate::artifact::Standardize { mean, std }),
        threshold_global: thresholds.global,
        thresholds: thresholds.per_label.clone(),
        metrics: metrics.clone(),
    };
    Ok(TrialResult {
        metrics,
        history,
        best_epoch,
        seconds,
        samples_per_s,
        threshold_global: thresholds.global,
        device: format!("{device:?}"),
        stopped_early,
        model: Some(crate::artifact::ModelFiles { weights, manifest }),
    })
}
