//! The fuse key: what trials must share to train as one stacked model (the dataset with
//! its split, the hidden widths and the batch size). The coordinator stores it with each
//! trial and leases groups of one key; the trainer refuses a stack whose configs differ
//! in it. Each model of a stack keeps everything else of its own (seed, learning rate,
//! loss, dropout, epochs, early stopping).

use sha2::{Digest, Sha256};

use crate::TrialConfig;

/// A hash of the parts of a config a stack shares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuseKey(String);

impl FuseKey {
    /// A refit trial (`cv: {refit: true}`) trains its folds one after another and then
    /// its model: it never shares a stack, so its key is all of its config.
    pub fn of(config: &TrialConfig) -> FuseKey {
        let key = if config.dataset.cv_refit {
            serde_json::json!(["refit", config])
        } else {
            serde_json::json!([config.dataset.identity_json(), config.model.hidden, config.train.batch_size])
        };
        FuseKey(hex::encode(Sha256::digest(serde_json::to_vec(&key).expect("json"))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `cfgs` cannot train as one stack, if they cannot: the first part of the key in
/// which a config differs from the first.
pub fn fuse_mismatch(cfgs: &[TrialConfig]) -> Option<String> {
    let first = cfgs.first()?;
    let key = FuseKey::of(first);
    cfgs.iter().enumerate().find(|(_, c)| FuseKey::of(c) != key).map(|(i, c)| {
        if c.dataset.cv_refit || first.dataset.cv_refit {
            "a refit trial (`cv: {refit: true}`) trains alone".to_string()
        } else if c.model.hidden != first.model.hidden {
            format!("config {i} has hidden {:?}, config 0 {:?}", c.model.hidden, first.model.hidden)
        } else if c.train.batch_size != first.train.batch_size {
            format!("config {i} has batch_size {}, config 0 {}", c.train.batch_size, first.train.batch_size)
        } else {
            format!("config {i} reads another dataset (or splits it otherwise) than config 0")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_what_a_stack_shares_and_nothing_else() {
        let a = TrialConfig::default();
        let mut b = a.clone();
        (b.train.lr, b.train.seed, b.train.epochs, b.loss.focal_gamma) = (0.1, 7, 3, 2.0);
        assert_eq!(FuseKey::of(&a), FuseKey::of(&b), "per-model settings stay out of the key");
        assert_eq!(fuse_mismatch(&[a.clone(), b.clone()]), None);
        for change in [
            |c: &mut TrialConfig| c.model.hidden = vec![64],
            |c: &mut TrialConfig| c.train.batch_size = 32,
            |c: &mut TrialConfig| c.dataset.split_seed = 1,
        ] {
            let mut c = a.clone();
            change(&mut c);
            assert_ne!(FuseKey::of(&a), FuseKey::of(&c));
            assert!(fuse_mismatch(&[a.clone(), c]).unwrap().starts_with("config 1 "));
        }
    }
}
