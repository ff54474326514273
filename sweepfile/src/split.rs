//! How train is split for validation: `val_fraction`, `split_seed`, `split` (random or
//! iterative stratification) and cross-validation folds (`cv: {folds: k}`, `fold`), as
//! the dataset section reads, checks and writes them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::dataset::{DataSource, DatasetConfig};

/// How validation rows are carved from train (when the source has no validation split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    /// A seeded permutation: the first `val_fraction` of it. The default, because every
    /// configuration stored before `split` existed was split this way: a missing `split`
    /// must keep meaning what it meant (same identity, same rows, same results).
    #[default]
    Random,
    /// Iterative stratification (Sechidis et al. 2011): every label with enough positives
    /// has some in validation. Recommended for long-tailed data.
    Iterative,
}

impl SplitMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitMethod::Random => "random",
            SplitMethod::Iterative => "iterative",
        }
    }
}

/// `cv: {folds: k}`, or `cv: {folds: k, refit: true}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cv {
    folds: u32,
    #[serde(default)]
    refit: bool,
}

impl DatasetConfig {
    /// Trials per configuration and replica: one per fold when cross-validated, else
    /// one (a refit trial trains its folds itself).
    pub fn trials_per_run(&self) -> u32 {
        if self.cv_refit {
            1
        } else {
            self.cv_folds.max(1)
        }
    }

    /// The keys every kind shares: the split settings, then blobs when bound.
    pub(crate) fn insert_split(&self, m: &mut Map<String, Value>) {
        m.insert("val_fraction".into(), json!(self.val_fraction));
        m.insert("split_seed".into(), json!(self.split_seed));
        if self.split != SplitMethod::Random {
            m.insert("split".into(), json!(self.split.as_str()));
        }
        if self.cv_refit {
            m.insert("cv".into(), json!({"folds": self.cv_folds, "refit": true}));
        } else if self.cv_folds > 0 {
            m.insert("cv".into(), json!({"folds": self.cv_folds}));
            m.insert("fold".into(), json!(self.fold));
        }
        if !self.blobs.is_empty() {
            m.insert("blobs".into(), json!(self.blobs));
        }
    }

    /// Reads the split settings out of a flat dataset map.
    pub(crate) fn take_split(&mut self, m: &mut Map<String, Value>) -> Result<(), String> {
        if let Some(v) = m.remove("val_fraction") {
            self.val_fraction = serde_json::from_value(v).map_err(|e| format!("val_fraction: {e}"))?;
        }
        if let Some(v) = m.remove("split_seed") {
            self.split_seed = serde_json::from_value(v).map_err(|e| format!("split_seed: {e}"))?;
        }
        if let Some(v) = m.remove("split") {
            self.split = serde_json::from_value(v.clone())
                .map_err(|_| format!("split: unknown split {v} (expected random or iterative)"))?;
        }
        if let Some(v) = m.remove("cv") {
            let cv: Cv = serde_json::from_value(v).map_err(|e| format!("cv: {e} (write cv: {{folds: 5}})"))?;
            (self.cv_folds, self.cv_refit) = (cv.folds, cv.refit);
        }
        if let Some(v) = m.remove("fold") {
            self.fold = serde_json::from_value(v).map_err(|e| format!("fold: {e}"))?;
        }
        Ok(())
    }

    /// Range checks of the split settings, as (dotted field, problem).
    pub(crate) fn check_split(&self, bad: &mut Vec<(String, String)>) {
        let v = self.val_fraction;
        if !v.is_finite() {
            bad.push(("dataset.val_fraction".into(), format!("{v} is not a finite number")));
        } else if !(v > 0.0 && v < 1.0) {
            bad.push(("dataset.val_fraction".into(), format!("{v} is out of range: must be in (0, 1)")));
        }
        if self.cv_folds == 0 && self.fold > 0 {
            bad.push(("dataset.fold".into(), "folds come with `cv: {folds: k}`".into()));
        } else if self.cv_refit && self.fold > 0 {
            let msg = "a refit trial (`cv: {refit: true}`) trains every fold itself: remove `fold`";
            bad.push(("dataset.fold".into(), msg.into()));
        } else if self.cv_folds == 1 || self.cv_folds > 20 {
            bad.push(("dataset.cv.folds".into(), format!("{} is out of range: must be in [2, 20]", self.cv_folds)));
        } else if self.fold >= self.cv_folds.max(1) {
            bad.push((
                "dataset.fold".into(),
                format!("{} is not a fold of {} (folds count from 0)", self.fold, self.cv_folds),
            ));
        }
        if let (true, DataSource::Text(t)) = (self.cv_folds > 0, &self.source) {
            if self.has("val", &t.val) {
                let msg = "the data has its own validation file (`val:`); folds are carved from train: remove one";
                bad.push(("dataset.cv".into(), msg.into()));
            }
        }
    }
}
