//! A trial's checkpoint: everything its training needs to go on exactly where it
//! stopped. Weights, AdamW's moments and step, the epoch and the position inside it,
//! early-stopping state (best objective, epoch and weights), the epochs reported so far.
//! The random state is the position itself: data order and dropout masks are functions of
//! (seed, epoch, step), so a resumed trial draws what the uninterrupted one would have.
//!
//! Bytes: `SWEEPCK1`, the state's JSON length (u64 little-endian), the JSON, then the
//! tensors as safetensors (`weights/…`, `best/…`, `m/<i>`, `v/<i>`).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::epoch::EpochReport;
use crate::model::Mlp;

const MAGIC: &[u8; 8] = b"SWEEPCK1";

/// Rows already trained in an unfinished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Rows of the epoch's order done.
    pub start: usize,
    pub batches: i64,
    /// The sum of those batches' mean losses (fp32, as the trainer adds them).
    pub loss_sum: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The trial's `train.seed`, checked on resume.
    pub seed: u64,
    /// Epochs finished (and reported).
    pub epochs_done: u32,
    /// Where inside epoch `epochs_done + 1` it stopped, if it stopped inside one.
    pub position: Option<Position>,
    /// Batches trained so far (the dropout counter and AdamW's step).
    pub steps: u64,
    pub since_best: u32,
    /// The best objective so far and its epoch.
    pub best: Option<(f64, u32)>,
    pub history: Vec<EpochReport>,
    pub train_seconds: f64,
}

pub struct Checkpoint {
    pub state: State,
    pub weights: Mlp,
    pub best: Option<Mlp>,
    /// AdamW's first and second moments, per parameter tensor (weight, bias per layer).
    pub moments: Vec<(Tensor, Tensor)>,
}

impl Checkpoint {
    /// The epoch a resumed run reports first.
    pub fn next_epoch(&self) -> u32 {
        self.state.epochs_done + 1
    }

    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let json = serde_json::to_vec(&self.state)?;
        let mut named: Vec<(String, Tensor)> = Vec::new();
        let prefixed = |prefix: &str, m: &Mlp| -> Vec<(String, Tensor)> {
            m.named().into_iter().map(|(n, t)| (format!("{prefix}/{n}"), t)).collect()
        };
        named.extend(prefixed("weights", &self.weights));
        if let Some(b) = &self.best {
            named.extend(prefixed("best", b));
        }
        for (i, (m, v)) in self.moments.iter().enumerate() {
            named.push((format!("m/{i}"), m.shallow_clone()));
            named.push((format!("v/{i}"), v.shallow_clone()));
        }
        let tensors = crate::tensors::safetensors_bytes(named)?;
        let mut out = Vec::with_capacity(16 + json.len() + tensors.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&tensors);
        Ok(out)
    }

    /// Reads a checkpoint of a model with these widths (and input layout) onto `device`.
    pub fn from_bytes(
        bytes: &[u8],
        inputs: i64,
        hidden: &[u32],
        outputs: i64,
        device: tch::Device,
        sparse: bool,
    ) -> anyhow::Result<Checkpoint> {
        use anyhow::{ensure, Context};
        ensure!(bytes.len() >= 16 && &bytes[..8] == MAGIC, "not a Sweep checkpoint");
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        ensure!(bytes.len() >= 16 + len, "checkpoint truncated");
        let state: State = serde_json::from_slice(&bytes[16..16 + len]).context("checkpoint state")?;
        let named = crate::tensors::safetensors_from_bytes(&bytes[16 + len..]).context("checkpoint tensors")?;
        let under = |prefix: &str| -> Vec<(String, Tensor)> {
            named
                .iter()
                .filter_map(|(n, t)| n.strip_prefix(prefix).map(|rest| (rest.to_string(), t.shallow_clone())))
                .collect()
        };
        let weights = Mlp::from_named(&under("weights/"), inputs, hidden, outputs, device, sparse)
            .context("checkpoint weights")?;
        let best_named = under("best/");
        let best = if best_named.is_empty() {
            None
        } else {
            Some(
                Mlp::from_named(&best_named, inputs, hidden, outputs, device, sparse)
                    .context("checkpoint best weights")?,
            )
        };
        let tensors = 2 * (hidden.len() + 1);
        let mut moments = Vec::with_capacity(tensors);
        for i in 0..tensors {
            let get = |kind: &str| {
                let name = format!("{kind}/{i}");
                named
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.to_device(device))
                    .with_context(|| format!("checkpoint has no `{name}`"))
            };
            moments.push((get("m")?, get("v")?));
        }
        Ok(Checkpoint { state, weights, best, moments })
    }
}
