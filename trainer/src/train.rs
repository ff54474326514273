//! The trainer: one trial, or K trials that share a dataset trained as one stacked model
//! ([`train_fused`]: one batched forward and backward per step, each model with its own
//! data order, dropout masks, loss settings, optimiser settings, clipping and early
//! stopping). A trial alone is a stack of one, so fused and unfused runs compute the same
//! numbers. Nothing here draws from libtorch's process-global generator after
//! initialisation (which takes turns under a lock): results do not depend on what else
//! runs in the process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sweep_spec::TrialConfig;
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{Checkpoint, Position, State};
use crate::data::{Dataset, SplitMix64};
use crate::loss::Loss;
use crate::metrics::{self, Thresholds};
use crate::model::{DropoutRng, Mlp, Stack};
use crate::optim::{self, AdamW};

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
/// `suspend` saves a checkpoint at the next batch and then stops it as `cancel` does.
#[derive(Debug, Default)]
pub struct Control {
    pub cancel: AtomicBool,
    pub finish: AtomicBool,
    pub suspend: AtomicBool,
}

impl Control {
    /// A control whose trial is cancelled from the start (tests).
    pub fn cancelled() -> Control {
        Control { cancel: AtomicBool::new(true), ..Control::default() }
    }
}

/// One epoch's numbers, streamed to the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Rows in the training split (rows x epochs run = samples trained on).
    pub train_rows: usize,
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

fn to_tensor(x: &[f32], rows: usize, cols: usize, device: Device) -> Tensor {
    Tensor::from_slice(x).view([rows as i64, cols as i64]).to_device(device)
}

fn labels_tensor(y: &[u8], rows: usize, cols: usize, device: Device) -> Tensor {
    Tensor::from_slice(y).view([rows as i64, cols as i64]).to_device(device).to_kind(Kind::Float)
}

/// Probabilities (row-major) of the model on rows `x`, computed as the trainer scores a
/// split (the same chunks, the same kernels), so a saved model scores a file exactly as
/// the trainer scored its test split.
pub fn probabilities(model: &Mlp, x: &Tensor) -> Vec<f32> {
    let (probs, _) = score(model, x, None);
    probs
}

/// Rows scored at once.
const EVAL_CHUNK: i64 = 8192;

/// Probabilities (row-major) of the model on rows `x` and, given labels and the loss, the
/// mean loss.
fn score(model: &Mlp, x: &Tensor, loss: Option<(&Tensor, &Loss)>) -> (Vec<f32>, f64) {
    tch::no_grad(|| {
        let n = x.size()[0];
        let mut probs = Vec::new();
        let mut loss_sum = Tensor::zeros([], (Kind::Float, x.device()));
        let mut start = 0;
        while start < n {
            let len = EVAL_CHUNK.min(n - start);
            let logits = model.forward(&x.narrow(0, start, len));
            if let Some((y, loss)) = loss {
                loss_sum += loss.elementwise(&logits, &y.narrow(0, start, len)).sum(Kind::Float);
            }
            probs.push(logits.sigmoid());
            start += len;
        }
        let probs = Tensor::cat(&probs, 0).to_device(Device::Cpu).contiguous().view([-1]);
        let v: Vec<f32> = Vec::<f32>::try_from(&probs).expect("probabilities to host");
        let labels = loss.map_or(1, |(y, _)| y.size()[1]);
        let mean_loss = f64::try_from(loss_sum).unwrap_or(f64::NAN) / (n * labels).max(1) as f64;
        (v, mean_loss)
    })
}

fn objective_of(metrics: &BTreeMap<String, f64>, name: &str) -> Result<f64, TrainError> {
    metrics
        .get(name)
        .copied()
        .ok_or_else(|| TrainError::User(format!("metric `{name}` is not reported for this dataset")))
}

/// Trains one trial: epochs until `train.epochs` or early stopping on the objective,
/// then the best epoch's weights are evaluated. Deterministic for a given seed on CPU.
pub fn train_one(
    ds: &Dataset,
    cfg: &TrialConfig,
    device: Device,
    progress: &mut dyn FnMut(&EpochReport),
    control: &Control,
) -> Result<TrialResult, TrainError> {
    let mut results = train_fused(ds, std::slice::from_ref(cfg), device, &mut |_, r| progress(r), &[control]);
    results.pop().expect("one config, one result")
}

/// Why configs cannot train as one stack, if they cannot: they must share the hidden
/// widths and the batch size (and the dataset, which the caller passes once).
pub fn fuse_mismatch(cfgs: &[TrialConfig]) -> Option<String> {
    let first = cfgs.first()?;
    cfgs.iter().enumerate().find_map(|(i, c)| {
        if c.model.hidden != first.model.hidden {
            Some(format!("config {i} has hidden {:?}, config 0 {:?}", c.model.hidden, first.model.hidden))
        } else if c.train.batch_size != first.train.batch_size {
            Some(format!("config {i} has batch_size {}, config 0 {}", c.train.batch_size, first.train.batch_size))
        } else {
            None
        }
    })
}

/// One model of a stack while it trains.
struct Member<'a> {
    cfg: &'a TrialConfig,
    control: &'a Control,
    /// Its loss alone, for scoring.
    loss: Loss,
    history: Vec<EpochReport>,
    best: Option<(f64, u32, Mlp)>,
    since_best: u32,
    stopped_early: bool,
    train_seconds: f64,
    /// Set when it stops training: `Ok` to be finalised from its best epoch, or the error.
    ended: Option<Result<(), TrainError>>,
}

/// Trains K trials that share `ds` as one stacked model. Results come back in config
/// order; `progress` gets (index, epoch report); `controls[k]` steers trial k alone
/// (cancelling one leaves the others' numbers unchanged).
pub fn train_fused(
    ds: &Dataset,
    cfgs: &[TrialConfig],
    device: Device,
    progress: &mut dyn FnMut(usize, &EpochReport),
    controls: &[&Control],
) -> Vec<Result<TrialResult, TrainError>> {
    let resume: Vec<Option<Checkpoint>> = cfgs.iter().map(|_| None).collect();
    train_fused_with(ds, cfgs, device, progress, controls, resume, &mut |_, _| {})
}

/// [`train_fused`], resuming each trial from its checkpoint (all from the same point, or
/// none) and handing `checkpoint` (index, checkpoint) every `train.checkpoint_every`
/// epochs and when a trial is suspended.
pub fn train_fused_with(
    ds: &Dataset,
    cfgs: &[TrialConfig],
    device: Device,
    progress: &mut dyn FnMut(usize, &EpochReport),
    controls: &[&Control],
    resume: Vec<Option<Checkpoint>>,
    checkpoint: &mut dyn FnMut(usize, Checkpoint),
) -> Vec<Result<TrialResult, TrainError>> {
    assert_eq!(cfgs.len(), controls.len(), "one control per config");
    assert_eq!(cfgs.len(), resume.len(), "one resume point (or none) per config");
    let refuse = |why: String| cfgs.iter().map(|_| Err(TrainError::User(why.clone()))).collect();
    if let Some(why) = fuse_mismatch(cfgs) {
        return refuse(format!("cannot train as one stack: {why}"));
    }
    if let Some(why) = resume_mismatch(cfgs, &resume) {
        return refuse(format!("cannot resume: {why}"));
    }
    let started = Instant::now();
    let (d, l, n) = (ds.features, ds.labels, ds.train.n);
    let k = cfgs.len();
    let mut members: Vec<Member> = cfgs
        .iter()
        .zip(controls)
        .map(|(cfg, control)| Member {
            cfg,
            control,
            loss: Loss::new(&cfg.loss, &ds.train_positives, n, device),
            history: Vec::new(),
            best: None,
            since_best: 0,
            stopped_early: false,
            train_seconds: 0.0,
            ended: None,
        })
        .collect();
    let models: Vec<Mlp> =
        cfgs.iter().map(|c| Mlp::init(d as i64, &c.model.hidden, l as i64, c.train.seed, device)).collect();
    let stack = Stack::new(&models);
    drop(models);
    let params = stack.params();
    let lrs: Vec<f64> = cfgs.iter().map(|c| c.train.lr).collect();
    let wds: Vec<f64> = cfgs.iter().map(|c| c.train.weight_decay).collect();
    let mut opt = AdamW::new(&params, &lrs, &wds);
    let clips: Vec<f64> = cfgs.iter().map(|c| c.train.grad_clip).collect();
    let seeds: Vec<u64> = cfgs.iter().map(|c| c.train.seed).collect();
    let dropout = DropoutRng::new(&seeds, &cfgs.iter().map(|c| c.model.dropout).collect::<Vec<_>>(), device);
    let loss_cfgs: Vec<&sweep_spec::LossConfig> = cfgs.iter().map(|c| &c.loss).collect();
    let loss = Loss::stacked(&loss_cfgs, &ds.train_positives, n, device);
    let xtr = to_tensor(&ds.train.x, n, d, device);
    let ytr = labels_tensor(&ds.train.y, n, l, device);
    let xva = to_tensor(&ds.val.x, ds.val.n, d, device);
    let yva = labels_tensor(&ds.val.y, ds.val.n, l, device);
    let bs = (cfgs[0].train.batch_size as usize).min(n);
    let max_epochs = cfgs.iter().map(|c| c.train.epochs).max().unwrap_or(0);
    // Where training starts: epoch 1, or where the checkpoints left off.
    let (mut step, mut first_epoch, mut position) = (0u64, 1u32, None::<Vec<Position>>);
    for (i, ck) in resume.into_iter().enumerate() {
        let Some(ck) = ck else { continue };
        stack.load(i as i64, &ck.weights);
        opt.restore(i as i64, ck.state.steps, &ck.moments);
        (step, first_epoch) = (ck.state.steps, ck.next_epoch());
        if let Some(p) = &ck.state.position {
            position.get_or_insert_with(Vec::new).push(p.clone());
        }
        let m = &mut members[i];
        m.history = ck.state.history;
        m.since_best = ck.state.since_best;
        m.train_seconds = ck.state.train_seconds;
        m.best = ck.state.best.zip(ck.best).map(|((objective, epoch), w)| (objective, epoch, w));
    }
    for epoch in first_epoch..=max_epochs {
        let mut active: Vec<bool> = members.iter().map(|m| m.ended.is_none()).collect();
        if !active.contains(&true) {
            break;
        }
        let t0 = Instant::now();
        // Each model's own order for this epoch, from its seed (as the trial alone).
        let mut perms: Vec<i64> = Vec::with_capacity(k * n);
        for s in &seeds {
            let seed = s.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
            perms.extend(SplitMix64(seed).permutation(n).iter().map(|&i| i as i64));
        }
        let perms = Tensor::from_slice(&perms).view([k as i64, n as i64]).to_device(device);
        let (mut loss_sum, mut batches, mut start) = match position.take() {
            Some(p) => {
                let sums: Vec<f32> = p.iter().map(|p| p.loss_sum).collect();
                (Tensor::from_slice(&sums).to_device(device), p[0].batches, p[0].start)
            }
            None => (Tensor::zeros([k as i64], (Kind::Float, device)), 0i64, 0usize),
        };
        while start < n {
            let suspended: Vec<usize> =
                (0..k).filter(|&i| active[i] && members[i].control.suspend.load(Ordering::Relaxed)).collect();
            if !suspended.is_empty() {
                let sums = Vec::<f32>::try_from(&loss_sum.to_device(Device::Cpu)).expect("losses to host");
                for i in suspended {
                    let at = Position { start, batches, loss_sum: sums[i] };
                    checkpoint(i, snapshot(i, &stack, &opt, &members[i], epoch - 1, Some(at), step));
                    members[i].ended = Some(Err(TrainError::Cancelled));
                    active[i] = false;
                }
            }
            for (m, a) in members.iter_mut().zip(active.iter_mut()) {
                if *a && m.control.cancel.load(Ordering::Relaxed) {
                    m.ended = Some(Err(TrainError::Cancelled));
                    *a = false;
                }
            }
            if !active.contains(&true) {
                break;
            }
            let len = bs.min(n - start);
            let idx = perms.narrow(1, start as i64, len as i64).reshape([-1]);
            let xb = xtr.index_select(0, &idx).view([k as i64, len as i64, d as i64]);
            let yb = ytr.index_select(0, &idx).view([k as i64, len as i64, l as i64]);
            let logits = stack.forward_train(&xb, dropout.as_ref(), step);
            let per_model = loss.per_model_mean(&logits, &yb);
            optim::zero_grad(&params);
            per_model.sum(Kind::Float).backward();
            optim::clip_grad_norm(&params, &clips);
            opt.set_active(&active);
            opt.step(&params);
            loss_sum += per_model.detach();
            step += 1;
            batches += 1;
            start += len;
        }
        let epoch_train_s = t0.elapsed().as_secs_f64();
        let train_losses: Vec<f64> = Vec::<f32>::try_from(&(loss_sum / batches.max(1) as f64).to_device(Device::Cpu))
            .expect("losses to host")
            .into_iter()
            .map(f64::from)
            .collect();
        for (i, m) in members.iter_mut().enumerate() {
            if !active[i] {
                continue;
            }
            m.train_seconds += epoch_train_s;
            if let Err(e) =
                end_of_epoch(m, i, epoch, train_losses[i], epoch_train_s, t0, &stack, &xva, &yva, ds, progress)
            {
                m.ended = Some(Err(e));
            }
            let every = m.cfg.train.checkpoint_every;
            if m.ended.is_none() && every > 0 && epoch % every == 0 {
                checkpoint(i, snapshot(i, &stack, &opt, m, epoch, None, step));
            }
        }
    }
    members
        .into_iter()
        .map(|m| match m.ended {
            Some(Err(e)) => Err(e),
            _ => finish(m, ds, device, started, k),
        })
        .collect()
}

/// Why these checkpoints cannot resume these configs as one stack, if they cannot: a
/// stack resumes all its models from one point (epoch, position, steps), or none.
fn resume_mismatch(cfgs: &[TrialConfig], resume: &[Option<Checkpoint>]) -> Option<String> {
    let points: Vec<(u32, Option<Position>, u64)> =
        resume.iter().flatten().map(|c| (c.state.epochs_done, c.state.position.clone(), c.state.steps)).collect();
    if !points.is_empty() && (points.len() != resume.len() || points.windows(2).any(|w| w[0] != w[1])) {
        return Some("the trials of a stack resume from one point, or none".into());
    }
    cfgs.iter().zip(resume).find_map(|(cfg, ck)| {
        let ck = ck.as_ref()?;
        (ck.state.seed != cfg.train.seed).then(|| {
            format!("the checkpoint is of seed {}, the trial's train.seed is {}", ck.state.seed, cfg.train.seed)
        })
    })
}

/// Model i's checkpoint now: `epochs_done` finished, `position` into the next.
fn snapshot(
    i: usize,
    stack: &Stack,
    opt: &AdamW,
    m: &Member,
    epochs_done: u32,
    position: Option<Position>,
    steps: u64,
) -> Checkpoint {
    debug_assert_eq!(steps, opt.steps());
    Checkpoint {
        state: State {
            seed: m.cfg.train.seed,
            epochs_done,
            position,
            steps,
            since_best: m.since_best,
            best: m.best.as_ref().map(|(objective, epoch, _)| (*objective, *epoch)),
            history: m.history.clone(),
            train_seconds: m.train_seconds,
        },
        weights: stack.model(i as i64),
        best: m.best.as_ref().map(|(_, _, w)| w.copy()),
        moments: opt.moments(i as i64),
    }
}

/// A model's epoch ends: its validation metrics, its report, early-stopping bookkeeping.
#[allow(clippy::too_many_arguments)]
fn end_of_epoch(
    m: &mut Member,
    i: usize,
    epoch: u32,
    train_loss: f64,
    epoch_train_s: f64,
    t0: Instant,
    stack: &Stack,
    xva: &Tensor,
    yva: &Tensor,
    ds: &Dataset,
    progress: &mut dyn FnMut(usize, &EpochReport),
) -> Result<(), TrainError> {
    if !train_loss.is_finite() {
        return Err(TrainError::User(format!(
            "loss became {train_loss} in epoch {epoch}; lower train.lr or loss.class_weight.cap"
        )));
    }
    let cfg = m.cfg;
    let model = stack.view(i as i64);
    let (val_probs, val_loss) = score(&model, xva, Some((yva, &m.loss)));
    let thresholds = metrics::tune_checked(&val_probs, &ds.val.y, ds.labels);
    let mut metrics = metrics::report("val", &val_probs, &ds.val.y, ds.labels, &thresholds, &ds.train_positives);
    metrics.insert("val.loss".into(), val_loss);
    metrics.insert("train.loss".into(), train_loss);
    metrics.insert("epoch_seconds".into(), t0.elapsed().as_secs_f64());
    metrics.insert("samples_per_s".into(), ds.train.n as f64 / epoch_train_s.max(1e-9));
    let objective = objective_of(&metrics, &cfg.metric.name)?;
    let report = EpochReport { epoch, metrics };
    progress(i, &report);
    m.history.push(report);
    if m.best.as_ref().is_none_or(|(b, _, _)| cfg.metric.goal.better(objective, *b)) {
        m.best = Some((objective, epoch, stack.model(i as i64)));
        m.since_best = 0;
    } else {
        m.since_best += 1;
        if cfg.train.patience > 0 && m.since_best >= cfg.train.patience {
            m.ended = Some(Ok(()));
        }
    }
    if m.control.finish.load(Ordering::Relaxed) && m.ended.is_none() {
        m.stopped_early = epoch < cfg.train.epochs;
        m.ended = Some(Ok(()));
    }
    if epoch >= cfg.train.epochs {
        m.ended = Some(Ok(()));
    }
    Ok(())
}

/// A model's result from its best epoch: validation and test metrics with thresholds
/// tuned on validation and applied to test, and the model artifact.
fn finish(
    m: Member,
    ds: &Dataset,
    device: Device,
    started: Instant,
    stack_size: usize,
) -> Result<TrialResult, TrainError> {
    let (cfg, l) = (m.cfg, ds.labels);
    let (_, best_epoch, model) = m.best.ok_or_else(|| TrainError::User("no epoch ran".into()))?;
    let xva = to_tensor(&ds.val.x, ds.val.n, ds.features, device);
    let yva = labels_tensor(&ds.val.y, ds.val.n, l, device);
    let (val_probs, val_loss) = score(&model, &xva, Some((&yva, &m.loss)));
    let thresholds: Thresholds = metrics::tune_checked(&val_probs, &ds.val.y, l);
    let xte = to_tensor(&ds.test.x, ds.test.n, ds.features, device);
    let yte = labels_tensor(&ds.test.y, ds.test.n, l, device);
    let (test_probs, test_loss) = score(&model, &xte, Some((&yte, &m.loss)));
    let mut metrics = metrics::report("val", &val_probs, &ds.val.y, l, &thresholds, &ds.train_positives);
    metrics.extend(metrics::report("test", &test_probs, &ds.test.y, l, &thresholds, &ds.train_positives));
    metrics.insert("val.loss".into(), val_loss);
    metrics.insert("test.loss".into(), test_loss);
    metrics.insert("threshold_global".into(), thresholds.global as f64);
    let weights = crate::artifact::ModelFiles::weights_of(&model)
        .map_err(|e| TrainError::Transient(format!("model weights: {e}")))?;
    if let Some(h) = m.history.iter().find(|h| h.epoch == best_epoch) {
        metrics.insert("train.loss".into(), h.metrics["train.loss"]);
    }
    metrics.insert("best_epoch".into(), best_epoch as f64);
    // How many trials trained as one stack with this one (1: alone).
    metrics.insert("stack_size".into(), stack_size as f64);
    let samples_per_s = (ds.train.n * m.history.len()) as f64 / m.train_seconds.max(1e-9);
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
        history: m.history,
        best_epoch,
        seconds,
        samples_per_s,
        train_rows: ds.train.n,
        threshold_global: thresholds.global,
        device: format!("{device:?}"),
        stopped_early: m.stopped_early,
        model: Some(crate::artifact::ModelFiles { weights, manifest }),
    })
}
