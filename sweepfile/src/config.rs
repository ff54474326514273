//! The fully resolved configuration of one trial: what a worker receives and what
//! `sweep-worker train --config` reads. Every field has a default, so every dotted
//! path that a sweep's `parameters:` may name exists.

use serde::{Deserialize, Serialize};

pub use crate::dataset::*;

/// Which way the objective goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Maximize,
    Minimize,
}

impl Goal {
    pub fn as_str(self) -> &'static str {
        match self {
            Goal::Maximize => "maximize",
            Goal::Minimize => "minimize",
        }
    }

    /// True when `a` is a better objective value than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Maximize => a > b,
            Goal::Minimize => a < b,
        }
    }
}

impl std::str::FromStr for Goal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "maximize" => Ok(Goal::Maximize),
            "minimize" => Ok(Goal::Minimize),
            other => Err(format!("unknown goal `{other}` (expected maximize or minimize)")),
        }
    }
}

impl TryFrom<String> for Goal {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The sweep's objective, e.g. `val.f1_micro` to maximize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    #[serde(default = "default_goal")]
    pub goal: Goal,
}

fn default_goal() -> Goal {
    Goal::Maximize
}

impl Default for Metric {
    fn default() -> Self {
        Metric { name: "val.f1_micro".into(), goal: Goal::Maximize }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `mlp`, or `encoder`: a pretrained encoder at `path` with this MLP as its head.
    #[serde(skip_serializing_if = "crate::encoder::is_default")]
    pub kind: crate::encoder::ModelKind,
    /// Hidden layer widths; empty means a linear model (or head).
    pub hidden: Vec<u32>,
    pub dropout: f64,
    /// The encoder's Hugging Face model directory (`config.json`, `model.safetensors`,
    /// `tokenizer.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Train only the head on embeddings computed once (the cheap tier).
    #[serde(skip_serializing_if = "crate::encoder::is_default")]
    pub freeze: bool,
    #[serde(skip_serializing_if = "crate::encoder::is_default")]
    pub pooling: crate::encoder::Pooling,
    /// Tokens per text, special tokens included.
    #[serde(skip_serializing_if = "crate::encoder::is_default_max_length")]
    pub max_length: u32,
    #[serde(skip_serializing_if = "crate::encoder::is_default")]
    pub truncation: crate::encoder::Truncation,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: Default::default(),
            hidden: vec![512],
            dropout: 0.2,
            path: None,
            freeze: false,
            pooling: Default::default(),
            max_length: crate::encoder::default_max_length(),
            truncation: Default::default(),
        }
    }
}

impl ModelConfig {
    /// An encoder model's frozen featurizer, with its settings; `None` for an MLP or a
    /// fine-tuned encoder.
    pub fn frozen_features(&self) -> Option<crate::encoder::EncoderFeatures> {
        (self.kind == crate::encoder::ModelKind::Encoder && self.freeze).then(|| crate::encoder::EncoderFeatures {
            path: self.path.clone(),
            pooling: self.pooling,
            max_length: self.max_length,
            truncation: self.truncation,
            batch_size: 32,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: f64,
    pub weight_decay: f64,
    /// Max global gradient norm; 0 turns clipping off.
    pub grad_clip: f64,
    /// Early stopping on the sweep's objective (validation); 0 turns it off.
    pub patience: u32,
    pub seed: u64,
    /// Save the trial's state (weights, optimiser, epoch, early stopping) to the blob
    /// store every this many epochs, so a re-leased attempt resumes from it; 0: only when
    /// the worker is told to stop (spot notice, shutdown).
    pub checkpoint_every: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 256,
            lr: 1e-3,
            weight_decay: 0.01,
            grad_clip: 0.0,
            patience: 5,
            seed: 0,
            checkpoint_every: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightScheme {
    None,
    /// neg/pos ratio per label.
    NegPos,
    /// sqrt(neg/pos).
    NegPosSqrt,
    /// Class-balanced "effective number" (Cui et al. 2019): (1-beta)/(1-beta^n), scaled
    /// so that the mean weight over labels is 1.
    EffectiveNumber,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassWeightConfig {
    pub scheme: WeightScheme,
    /// Positive weights are clipped to at most `cap`.
    pub cap: f64,
    /// Only for `effective_number`.
    pub beta: f64,
}

impl Default for ClassWeightConfig {
    fn default() -> Self {
        ClassWeightConfig { scheme: WeightScheme::NegPos, cap: 10.0, beta: 0.999 }
    }
}

/// Records a problem when `v` is not finite, or `ok` is false (`want` says the range).
fn check_number(bad: &mut Vec<(String, String)>, field: &str, v: f64, ok: bool, want: &str) {
    if !v.is_finite() {
        bad.push((field.to_string(), format!("{v} is not a finite number")));
    } else if !ok {
        bad.push((field.to_string(), format!("{v} is out of range: {want}")));
    }
}

/// Which loss a trial trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// BCE-with-logits with per-label positive weights; focal when `focal_gamma` > 0.
    #[default]
    Bce,
    /// Asymmetric loss (Ridnik et al., ICCV 2021), settings in `loss.asl`.
    Asl,
    /// Distribution-balanced loss (Wu et al., ECCV 2020), settings in `loss.db`.
    Db,
}

impl LossKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LossKind::Bce => "bce",
            LossKind::Asl => "asl",
            LossKind::Db => "db",
        }
    }
}

/// Asymmetric loss, as the authors' `AsymmetricLoss` (Alibaba-MIIL/ASL `losses.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AslConfig {
    /// Focusing exponent on positives.
    pub gamma_pos: f64,
    /// Focusing exponent on negatives.
    pub gamma_neg: f64,
    /// Probability margin: a negative's probability is shifted down by `clip` (0: off).
    pub clip: f64,
    /// Floor of the probabilities inside the logarithms.
    pub eps: f64,
}

impl Default for AslConfig {
    /// The authors' training script: gamma_neg 4, gamma_pos 0, clip 0.05.
    fn default() -> Self {
        AslConfig { gamma_pos: 0.0, gamma_neg: 4.0, clip: 0.05, eps: 1e-8 }
    }
}

/// Distribution-balanced loss, as the authors' `ResampleLoss` with `reweight_func:
/// rebalance`, negative-tolerant regularisation and the focal term, in the text port's
/// form (Roche/BalancedLossNLP, whose defaults these are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbConfig {
    /// Re-balanced weighting r̂ = alpha + sigmoid(beta (r - mu)).
    pub alpha: f64,
    pub beta: f64,
    pub mu: f64,
    /// Negative-tolerant regularisation: the class-prior bias scale (kappa) and the
    /// negative logit scale (lambda).
    pub kappa: f64,
    pub lambda: f64,
    /// The focal term: exponent and alpha (weight of positives; negatives get 1 - alpha).
    pub gamma: f64,
    pub focal_alpha: f64,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig { alpha: 0.1, beta: 10.0, mu: 0.9, kappa: 0.05, lambda: 2.0, gamma: 2.0, focal_alpha: 0.5 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    pub kind: LossKind,
    pub class_weight: ClassWeightConfig,
    /// Focal modulation exponent (kind bce); 0 turns it off.
    pub focal_gamma: f64,
    /// torchvision `sigmoid_focal_loss` alpha (kind bce); negative turns it off.
    pub focal_alpha: f64,
    pub asl: AslConfig,
    pub db: DbConfig,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: LossKind::Bce,
            class_weight: ClassWeightConfig::default(),
            focal_gamma: 0.0,
            focal_alpha: -1.0,
            asl: AslConfig::default(),
            db: DbConfig::default(),
        }
    }
}

impl LossConfig {
    /// Range checks of the loss section and the combinations its kinds refuse.
    fn check(&self, bad: &mut Vec<(String, String)>) {
        let mut num = |field: &str, v: f64, ok: bool, want: &str| check_number(bad, field, v, ok, want);
        let cw = &self.class_weight;
        num("loss.class_weight.cap", cw.cap, cw.cap >= 1.0, "must be >= 1");
        num("loss.class_weight.beta", cw.beta, cw.beta > 0.0 && cw.beta < 1.0, "must be in (0, 1)");
        let (g, a) = (self.focal_gamma, self.focal_alpha);
        num("loss.focal_gamma", g, (0.0..=10.0).contains(&g), "must be in [0, 10]");
        num("loss.focal_alpha", a, a < 1.0, "must be < 1 (negative = off)");
        let asl = &self.asl;
        num("loss.asl.gamma_pos", asl.gamma_pos, (0.0..=10.0).contains(&asl.gamma_pos), "must be in [0, 10]");
        num("loss.asl.gamma_neg", asl.gamma_neg, (0.0..=10.0).contains(&asl.gamma_neg), "must be in [0, 10]");
        num("loss.asl.clip", asl.clip, (0.0..1.0).contains(&asl.clip), "must be in [0, 1)");
        num("loss.asl.eps", asl.eps, asl.eps > 0.0 && asl.eps <= 0.1, "must be in (0, 0.1]");
        let db = &self.db;
        num("loss.db.alpha", db.alpha, db.alpha >= 0.0, "must be >= 0");
        num("loss.db.beta", db.beta, db.beta > 0.0 && db.beta <= 1000.0, "must be in (0, 1000]");
        num("loss.db.mu", db.mu, db.mu.abs() <= 1e6, "must be in [-1e6, 1e6]");
        num("loss.db.kappa", db.kappa, (0.0..=10.0).contains(&db.kappa), "must be in [0, 10]");
        num("loss.db.lambda", db.lambda, db.lambda > 0.0 && db.lambda <= 100.0, "must be in (0, 100]");
        num("loss.db.gamma", db.gamma, (0.0..=10.0).contains(&db.gamma), "must be in [0, 10]");
        num("loss.db.focal_alpha", db.focal_alpha, (0.0..=1.0).contains(&db.focal_alpha), "must be in [0, 1]");
        self.check_kind(bad);
    }

    /// ASL and DB bring their own focusing; DB its own re-weighting.
    fn check_kind(&self, bad: &mut Vec<(String, String)>) {
        let kind = self.kind.as_str();
        if self.kind != LossKind::Bce && self.focal_gamma != 0.0 {
            let own = if self.kind == LossKind::Asl { "loss.asl.gamma_pos / gamma_neg" } else { "loss.db.gamma" };
            bad.push((
                "loss.focal_gamma".into(),
                format!("only for loss.kind bce; loss.kind {kind} focuses with {own} (set focal_gamma: 0)"),
            ));
        }
        if self.kind != LossKind::Bce && self.focal_alpha >= 0.0 {
            bad.push(("loss.focal_alpha".into(), format!("only for loss.kind bce, not {kind} (leave it at -1)")));
        }
        if self.kind == LossKind::Db && self.class_weight.scheme != WeightScheme::None {
            bad.push((
                "loss.class_weight.scheme".into(),
                "loss.kind db re-balances every label with its own weighting; a class-weight scheme would weight positives twice (set loss.class_weight.scheme: none)"
                    .into(),
            ));
        }
    }
}

/// Everything a worker needs to run one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrialConfig {
    pub metric: Metric,
    pub dataset: DatasetConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub loss: LossConfig,
}

impl TrialConfig {
    /// Range checks that serde's types cannot express. Returns (dotted field, problem).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut bad = Vec::new();
        let mut num = |field: &str, v: f64, ok: bool, want: &str| check_number(&mut bad, field, v, ok, want);
        let m = &self.model;
        num("model.dropout", m.dropout, (0.0..1.0).contains(&m.dropout), "must be in [0, 1)");
        let t = &self.train;
        num("train.lr", t.lr, t.lr > 0.0 && t.lr <= 10.0, "must be in (0, 10]");
        num("train.weight_decay", t.weight_decay, t.weight_decay >= 0.0, "must be >= 0");
        num("train.grad_clip", t.grad_clip, t.grad_clip >= 0.0, "must be >= 0 (0 = off)");
        self.loss.check(&mut bad);
        if t.epochs == 0 || t.epochs > 10_000 {
            bad.push(("train.epochs".into(), format!("{} is out of range: must be in [1, 10000]", t.epochs)));
        }
        if t.batch_size == 0 || t.batch_size > 1 << 20 {
            bad.push(("train.batch_size".into(), format!("{} is out of range: must be in [1, 1048576]", t.batch_size)));
        }
        if m.max_length < 2 || m.max_length > 8192 {
            bad.push(("model.max_length".into(), format!("{} is out of range: must be in [2, 8192]", m.max_length)));
        }
        if m.hidden.len() > 16 || m.hidden.iter().any(|&h| h == 0 || h > 65_536) {
            bad.push(("model.hidden".into(), "at most 16 layers, each of width 1 to 65536".into()));
        }
        self.dataset.check(&mut bad);
        self.check_encoder(&mut bad);
        bad
    }

    /// A frozen encoder is the text dataset's featurizer once resolved; a config written
    /// by hand that names one the dataset does not use would train something else.
    fn check_encoder(&self, bad: &mut Vec<(String, String)>) {
        let frozen = self.model.kind == crate::encoder::ModelKind::Encoder && self.model.freeze;
        let used = matches!(&self.dataset.source, crate::DataSource::Text(t) if t.encoder.is_some());
        if frozen && !used && self.dataset.kind() == crate::DatasetKind::Text {
            let msg = "a frozen encoder, but the dataset has no `encoder` featurizer: a trial config is resolved \
                       (`sweep validate FILE -o json` prints resolved configs)";
            bad.push(("model.kind".into(), msg.into()));
        }
    }

    /// Fills in the defaults that depend on other fields, before [`TrialConfig::check`]:
    /// a `db` loss without an explicit class-weight scheme gets none (DB re-weights every
    /// label itself; `neg_pos` is the default of the other kinds), and a text dataset's
    /// format comes from its file's extension. Returns what cannot be resolved.
    pub fn resolve(&mut self, scheme_given: bool) -> Vec<(String, String)> {
        if self.loss.kind == LossKind::Db && !scheme_given {
            self.loss.class_weight.scheme = WeightScheme::None;
        }
        let mut bad = Vec::new();
        self.dataset.resolve(&mut bad);
        self.resolve_encoder(&mut bad);
        bad
    }

    /// A frozen encoder becomes the text dataset's featurizer (unless the dataset already
    /// has it: a bound config, or one resolved before).
    fn resolve_encoder(&mut self, bad: &mut Vec<(String, String)>) {
        use crate::encoder::ModelKind;
        let m = &self.model;
        if m.kind != ModelKind::Encoder {
            if m.path.is_some() {
                bad.push((
                    "model.path".into(),
                    "a path is for `kind: encoder` (a pretrained encoder's directory)".into(),
                ));
            }
            return;
        }
        let kind = self.dataset.kind();
        let bound = self.dataset.blobs.contains_key("encoder");
        let crate::DataSource::Text(t) = &mut self.dataset.source else {
            let msg = format!("an encoder reads raw text: dataset.kind is {}, not text", kind.as_str());
            return bad.push(("model.kind".into(), msg));
        };
        if m.path.is_none() && !bound && t.encoder.as_ref().is_none_or(|e| e.path.is_none()) {
            let msg = "an encoder needs `path`: its Hugging Face model directory (config.json, model.safetensors, tokenizer.json)";
            bad.push(("model.path".into(), msg.into()));
        }
        if !m.freeze {
            let msg = "fine-tuning an encoder (freeze: false) is not built yet: set freeze: true to train heads on its frozen embeddings";
            return bad.push(("model.freeze".into(), msg.into()));
        }
        if t.encoder.is_none() {
            t.encoder = m.frozen_features();
        }
    }
}

/// Early stopping across a sweep's trials, decided by the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EarlyStop {
    /// Asynchronous successive halving (the stopping variant): at epochs min_epochs *
    /// reduction_factor^k below max_epochs, a trial goes on only if its objective is in the
    /// top 1/reduction_factor of the values recorded at that rung so far.
    Asha {
        #[serde(default = "one_epoch")]
        min_epochs: u32,
        #[serde(default = "three")]
        reduction_factor: u32,
        /// 0 in a sweep file means the base config's `train.epochs`.
        #[serde(default)]
        max_epochs: u32,
    },
}

fn one_epoch() -> u32 {
    1
}

fn three() -> u32 {
    3
}
