//! A stack's life as named steps: [`Run::build`], [`Run::resume`], [`Run::epoch`],
//! [`Run::end_of_epoch`], then [`Run::finish`] (in `finish.rs`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use sweep_file::TrialConfig;
use tch::{Device, Kind, Tensor};

use super::{Control, EpochReport, Member, TrainError, TrialResult};
use crate::checkpoint::{Checkpoint, Position, State};
use crate::data::{Dataset, Features, SplitMix64};
use crate::loss::Loss;
use crate::metrics;
use crate::model::{DropoutRng, Mlp, Stack};
use crate::optim::{self, AdamW};
use crate::score::{labels_tensor, score, Order, Rows};

/// One model of a stack while it trains.
pub(super) struct Model<'a> {
    pub cfg: &'a TrialConfig,
    control: &'a Control,
    /// Its loss alone, for scoring.
    pub loss: Loss,
    pub history: Vec<EpochReport>,
    pub best: Option<(f64, u32, Mlp)>,
    since_best: u32,
    pub stopped_early: bool,
    pub train_seconds: f64,
    /// Set when it stops training: `Ok` to be finalised from its best epoch, or the error.
    pub ended: Option<Result<(), TrainError>>,
}

/// A stack being trained: its models, the shared tensors and where it is.
pub(super) struct Run<'a> {
    pub ds: &'a Dataset,
    pub device: Device,
    pub models: Vec<Model<'a>>,
    stack: Stack,
    opt: AdamW,
    clips: Vec<f64>,
    seeds: Vec<u64>,
    dropout: Option<DropoutRng>,
    /// Every model's loss at once, `[K]` per-model means.
    loss: Loss,
    train_rows: Rows<'a>,
    ytr: Tensor,
    val_rows: Rows<'a>,
    yva: Tensor,
    batch: usize,
    step: u64,
    pub started: Instant,
    checkpoints: Vec<Option<Checkpoint>>,
}

/// What one epoch's batches left: each model's mean training loss, and the time spent.
pub(super) struct Trained {
    losses: Vec<f64>,
    seconds: f64,
    t0: Instant,
}

/// Why these checkpoints cannot resume these configs as one stack, if they cannot: a
/// stack resumes all its models from one point (epoch, position, steps), or none.
fn resume_mismatch(members: &[Member]) -> Option<String> {
    let points: Vec<(u32, Option<Position>, u64)> = members
        .iter()
        .filter_map(|m| m.resume.as_ref())
        .map(|c| (c.state.epochs_done, c.state.position.clone(), c.state.steps))
        .collect();
    if !points.is_empty() && (points.len() != members.len() || points.windows(2).any(|w| w[0] != w[1])) {
        return Some("the trials of a stack resume from one point, or none".into());
    }
    members.iter().find_map(|m| {
        let ck = m.resume.as_ref()?;
        (ck.state.seed != m.config.train.seed).then(|| {
            format!("the checkpoint is of seed {}, the trial's train.seed is {}", ck.state.seed, m.config.train.seed)
        })
    })
}

impl<'a> Run<'a> {
    /// The stack of the members' models (each initialised from its own seed), the
    /// optimiser, the losses and the batches' sources; refused when the members cannot
    /// share a stack or their checkpoints do not fit.
    pub fn build(ds: &'a Dataset, members: Vec<Member<'a>>, device: Device) -> Result<Run<'a>, String> {
        let cfgs: Vec<TrialConfig> = members.iter().map(|m| m.config.clone()).collect();
        if let Some(why) = sweep_file::fuse_mismatch(&cfgs) {
            return Err(format!("cannot train as one stack: {why}"));
        }
        if let Some(why) = resume_mismatch(&members) {
            return Err(format!("cannot resume: {why}"));
        }
        let (d, l, n) = (ds.features, ds.labels, ds.train.n);
        let sparse = matches!(ds.train.x, Features::Sparse(_));
        let mlps: Vec<Mlp> = members
            .iter()
            .map(|m| Mlp::init(d as i64, &m.config.model.hidden, l as i64, m.config.train.seed, device, sparse))
            .collect();
        let stack = Stack::new(&mlps);
        drop(mlps);
        let per = |f: fn(&TrialConfig) -> f64| cfgs.iter().map(f).collect::<Vec<f64>>();
        let opt = AdamW::new(&stack.params(), &per(|c| c.train.lr), &per(|c| c.train.weight_decay));
        let seeds: Vec<u64> = cfgs.iter().map(|c| c.train.seed).collect();
        let dropout = DropoutRng::new(&seeds, &per(|c| c.model.dropout), device);
        let loss_cfgs: Vec<&sweep_file::LossConfig> = members.iter().map(|m| &m.config.loss).collect();
        let loss = Loss::stacked(&loss_cfgs, &ds.train_positives, n, device);
        let batch = (members[0].config.train.batch_size as usize).min(n);
        let mut checkpoints = Vec::with_capacity(members.len());
        let models = members
            .into_iter()
            .map(|m| {
                checkpoints.push(m.resume);
                Model {
                    cfg: m.config,
                    control: m.control,
                    loss: Loss::new(&m.config.loss, &ds.train_positives, n, device),
                    history: Vec::new(),
                    best: None,
                    since_best: 0,
                    stopped_early: false,
                    train_seconds: 0.0,
                    ended: None,
                }
            })
            .collect();
        Ok(Run {
            ds,
            device,
            models,
            stack,
            opt,
            clips: per(|c| c.train.grad_clip),
            seeds,
            dropout,
            loss,
            train_rows: Rows::of(&ds.train, d, device),
            ytr: labels_tensor(&ds.train.y, n, l, device),
            val_rows: Rows::of(&ds.val, d, device),
            yva: labels_tensor(&ds.val.y, ds.val.n, l, device),
            batch,
            step: 0,
            started: Instant::now(),
            checkpoints,
        })
    }

    pub fn max_epochs(&self) -> u32 {
        self.models.iter().map(|m| m.cfg.train.epochs).max().unwrap_or(0)
    }

    pub fn any_active(&self) -> bool {
        self.models.iter().any(|m| m.ended.is_none())
    }

    /// Loads the checkpoints (weights, moments, steps, history, early stopping); returns
    /// the first epoch to train and, when they stopped inside an epoch, where.
    pub fn resume(&mut self) -> (u32, Option<Vec<Position>>) {
        let (mut first_epoch, mut position) = (1u32, None::<Vec<Position>>);
        for (i, ck) in std::mem::take(&mut self.checkpoints).into_iter().enumerate() {
            let Some(ck) = ck else { continue };
            self.stack.load(i as i64, &ck.weights);
            self.opt.restore(i as i64, ck.state.steps, &ck.moments);
            (self.step, first_epoch) = (ck.state.steps, ck.next_epoch());
            if let Some(p) = &ck.state.position {
                position.get_or_insert_with(Vec::new).push(p.clone());
            }
            let m = &mut self.models[i];
            m.history = ck.state.history;
            m.since_best = ck.state.since_best;
            m.train_seconds = ck.state.train_seconds;
            m.best = ck.state.best.zip(ck.best).map(|((objective, epoch), w)| (objective, epoch, w));
        }
        (first_epoch, position)
    }

    /// Each model's own row order for an epoch, from its seed (as the trial alone).
    fn order(&self, epoch: u32) -> Order {
        let n = self.ds.train.n;
        let host = self
            .seeds
            .iter()
            .map(|s| {
                let seed = s.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
                SplitMix64(seed).permutation(n).into_iter().map(|i| i as i64).collect()
            })
            .collect();
        Order::new(host, self.device)
    }

    /// Stops models told to suspend (checkpointed first) or cancel; true while any trains.
    fn steer(
        &mut self,
        epoch: u32,
        at: (usize, i64),
        loss_sum: &Tensor,
        checkpoint: &mut dyn FnMut(usize, Checkpoint),
    ) -> bool {
        let suspended: Vec<usize> = (0..self.models.len())
            .filter(|&i| self.models[i].ended.is_none() && self.models[i].control.suspend.load(Ordering::Relaxed))
            .collect();
        if !suspended.is_empty() {
            let sums = Vec::<f32>::try_from(&loss_sum.to_device(Device::Cpu)).expect("losses to host");
            for i in suspended {
                let position = Position { start: at.0, batches: at.1, loss_sum: sums[i] };
                checkpoint(i, self.snapshot(i, epoch - 1, Some(position)));
                self.models[i].ended = Some(Err(TrainError::Cancelled));
            }
        }
        for m in self.models.iter_mut().filter(|m| m.ended.is_none()) {
            if m.control.cancel.load(Ordering::Relaxed) {
                m.ended = Some(Err(TrainError::Cancelled));
            }
        }
        self.any_active()
    }

    /// One epoch's batches for every model still training (from `position` when resuming
    /// inside it); suspend and cancel are honoured between batches.
    pub fn epoch(
        &mut self,
        epoch: u32,
        position: Option<Vec<Position>>,
        checkpoint: &mut dyn FnMut(usize, Checkpoint),
    ) -> Trained {
        let (k, n) = (self.models.len(), self.ds.train.n);
        let t0 = Instant::now();
        let order = self.order(epoch);
        let (mut loss_sum, mut batches, mut start) = match position {
            Some(p) => {
                let sums: Vec<f32> = p.iter().map(|p| p.loss_sum).collect();
                (Tensor::from_slice(&sums).to_device(self.device), p[0].batches, p[0].start)
            }
            None => (Tensor::zeros([k as i64], (Kind::Float, self.device)), 0i64, 0usize),
        };
        let owned: Vec<Tensor> = self.stack.params().into_iter().map(Tensor::shallow_clone).collect();
        let params: Vec<&Tensor> = owned.iter().collect();
        while start < n {
            if !self.steer(epoch, (start, batches), &loss_sum, checkpoint) {
                break;
            }
            let len = self.batch.min(n - start);
            let xb = self.train_rows.stacked(&order, start, len, self.device);
            let idx = order.device.narrow(1, start as i64, len as i64).reshape([-1]);
            let yb = self.ytr.index_select(0, &idx).view([k as i64, len as i64, -1]);
            let logits = self.stack.forward_train(&xb, self.dropout.as_ref(), self.step);
            let per_model = self.loss.per_model_mean(&logits, &yb);
            optim::zero_grad(&params);
            per_model.sum(Kind::Float).backward();
            optim::clip_grad_norm(&params, &self.clips);
            let active: Vec<bool> = self.models.iter().map(|m| m.ended.is_none()).collect();
            self.opt.set_active(&active);
            self.opt.step(&params);
            loss_sum += per_model.detach();
            self.step += 1;
            batches += 1;
            start += len;
        }
        let seconds = t0.elapsed().as_secs_f64();
        let means =
            Vec::<f32>::try_from(&(loss_sum / batches.max(1) as f64).to_device(Device::Cpu)).expect("losses to host");
        Trained { losses: means.into_iter().map(f64::from).collect(), seconds, t0 }
    }

    /// Resumes, then trains epochs until every model has ended or reached its last.
    pub fn train(
        &mut self,
        progress: &mut dyn FnMut(usize, &EpochReport),
        checkpoint: &mut dyn FnMut(usize, Checkpoint),
    ) {
        let (first_epoch, mut position) = self.resume();
        for epoch in first_epoch..=self.max_epochs() {
            if !self.any_active() {
                break;
            }
            let trained = self.epoch(epoch, position.take(), checkpoint);
            self.end_of_epoch(epoch, trained, progress, checkpoint);
        }
    }

    /// Each model that trained this epoch: its validation metrics, its report, early
    /// stopping, and its checkpoint when one is due.
    pub fn end_of_epoch(
        &mut self,
        epoch: u32,
        trained: Trained,
        progress: &mut dyn FnMut(usize, &EpochReport),
        checkpoint: &mut dyn FnMut(usize, Checkpoint),
    ) {
        for i in 0..self.models.len() {
            if self.models[i].ended.is_some() {
                continue;
            }
            self.models[i].train_seconds += trained.seconds;
            if let Err(e) = self.evaluate(i, epoch, &trained, progress) {
                self.models[i].ended = Some(Err(e));
            }
            let every = self.models[i].cfg.train.checkpoint_every;
            if self.models[i].ended.is_none() && every > 0 && epoch.is_multiple_of(every) {
                checkpoint(i, self.snapshot(i, epoch, None));
            }
        }
    }

    /// Model i's epoch: validation metrics, the report, early-stopping bookkeeping.
    fn evaluate(
        &mut self,
        i: usize,
        epoch: u32,
        trained: &Trained,
        progress: &mut dyn FnMut(usize, &EpochReport),
    ) -> Result<(), TrainError> {
        let train_loss = trained.losses[i];
        if !train_loss.is_finite() {
            return Err(TrainError::User(format!(
                "loss became {train_loss} in epoch {epoch}; lower train.lr or loss.class_weight.cap"
            )));
        }
        let ds = self.ds;
        if ds.val.n == 0 {
            self.no_validation(i, epoch, trained, progress);
            return Ok(());
        }
        let model = self.stack.view(i as i64);
        let m = &mut self.models[i];
        let (val_probs, val_loss) = score(&model, &self.val_rows, ds.val.n, Some((&self.yva, &m.loss)));
        let thresholds = metrics::tune_checked(&val_probs, &ds.val.y, ds.labels);
        let mut metrics = metrics::report("val", &val_probs, &ds.val.y, ds.labels, &thresholds, &ds.train_positives);
        metrics.insert("val.loss".into(), val_loss);
        metrics.insert("train.loss".into(), train_loss);
        metrics.insert("epoch_seconds".into(), trained.t0.elapsed().as_secs_f64());
        metrics.insert("samples_per_s".into(), ds.train.n as f64 / trained.seconds.max(1e-9));
        let objective = super::finish::objective_of(&metrics, &m.cfg.metric.name)?;
        let report = EpochReport { epoch, metrics };
        progress(i, &report);
        m.history.push(report);
        if m.best.as_ref().is_none_or(|(b, _, _)| m.cfg.metric.goal.better(objective, *b)) {
            m.best = Some((objective, epoch, self.stack.model(i as i64)));
            m.since_best = 0;
        } else {
            m.since_best += 1;
            if m.cfg.train.patience > 0 && m.since_best >= m.cfg.train.patience {
                m.ended = Some(Ok(()));
            }
        }
        if m.control.finish.load(Ordering::Relaxed) && m.ended.is_none() {
            m.stopped_early = epoch < m.cfg.train.epochs;
            m.ended = Some(Ok(()));
        }
        if epoch >= m.cfg.train.epochs {
            m.ended = Some(Ok(()));
        }
        Ok(())
    }

    /// Model i's epoch with nothing to validate on (a refit trial's final model, trained
    /// on every row for a number of epochs the folds chose): its report has the training
    /// metrics alone, and the latest epoch is its best.
    fn no_validation(
        &mut self,
        i: usize,
        epoch: u32,
        trained: &Trained,
        progress: &mut dyn FnMut(usize, &EpochReport),
    ) {
        let mut metrics = std::collections::BTreeMap::new();
        metrics.insert("train.loss".to_string(), trained.losses[i]);
        metrics.insert("epoch_seconds".into(), trained.t0.elapsed().as_secs_f64());
        metrics.insert("samples_per_s".into(), self.ds.train.n as f64 / trained.seconds.max(1e-9));
        let report = EpochReport { epoch, metrics };
        progress(i, &report);
        let model = self.stack.model(i as i64);
        let m = &mut self.models[i];
        m.history.push(report);
        m.best = Some((f64::from(epoch), epoch, model));
        if epoch >= m.cfg.train.epochs || m.control.finish.load(Ordering::Relaxed) {
            m.stopped_early = epoch < m.cfg.train.epochs;
            m.ended = Some(Ok(()));
        }
    }

    /// Model i's checkpoint now: `epochs_done` finished, `position` into the next.
    fn snapshot(&self, i: usize, epochs_done: u32, position: Option<Position>) -> Checkpoint {
        debug_assert_eq!(self.step, self.opt.steps());
        let m = &self.models[i];
        Checkpoint {
            state: State {
                seed: m.cfg.train.seed,
                epochs_done,
                position,
                steps: self.step,
                since_best: m.since_best,
                best: m.best.as_ref().map(|(objective, epoch, _)| (*objective, *epoch)),
                history: m.history.clone(),
                train_seconds: m.train_seconds,
            },
            weights: self.stack.model(i as i64),
            best: m.best.as_ref().map(|(_, _, w)| w.copy()),
            moments: self.opt.moments(i as i64),
        }
    }

    /// Each model's result: its error, or its best epoch evaluated.
    pub fn finish(self) -> Vec<Result<TrialResult, TrainError>> {
        let k = self.models.len();
        let (ds, device, started) = (self.ds, self.device, self.started);
        self.models
            .into_iter()
            .map(|m| match m.ended {
                Some(Err(e)) => Err(e),
                _ => super::finish::finish(m, ds, device, started, k),
            })
            .collect()
    }
}
