//! The frozen tier's featurizer: every document's pooled embedding, computed once (no
//! gradients, dropout off). Documents are tokenized, sorted by length and batched so a
//! batch pads to its own longest text (length bucketing, dynamic padding); the rows come
//! back in the documents' order.

use std::path::Path;

use sweep_file::EncoderFeatures;
use tch::{Device, Kind, Tensor};

use super::{pool, Encoder, TextTokenizer};

/// An encoder and its tokenizer, loaded once, with the trial's settings.
pub struct Embedder {
    encoder: Encoder,
    tokenizer: TextTokenizer,
    settings: EncoderFeatures,
    device: Device,
}

impl Embedder {
    /// Loads the model directory `dir` ([`sweep_file::check_model_dir`] first).
    pub fn load(dir: &Path, settings: &EncoderFeatures, device: Device) -> anyhow::Result<Embedder> {
        // What `sweep submit` checked already, in the same words, before the weights load.
        sweep_file::check_model_dir(dir, settings.max_length).map_err(anyhow::Error::msg)?;
        let encoder = Encoder::load(dir, device)?;
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), encoder.vocab())?;
        Ok(Embedder { encoder, tokenizer, settings: settings.clone(), device })
    }

    /// The embedding's width (the encoder's hidden size).
    pub fn columns(&self) -> usize {
        self.encoder.config.hidden as usize
    }

    /// Each text's token ids, special tokens included, truncated as the settings say.
    pub fn token_ids(&self, docs: &[String]) -> anyhow::Result<Vec<Vec<u32>>> {
        let (max, how) = (self.settings.max_length as usize, self.settings.truncation);
        docs.iter().map(|d| self.tokenizer.encode(d, max, how)).collect()
    }

    /// Row-major `[docs, hidden]` pooled embeddings.
    pub fn embed(&self, docs: &[String]) -> anyhow::Result<Vec<f32>> {
        let ids = self.token_ids(docs)?;
        let mut order: Vec<usize> = (0..docs.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let h = self.columns();
        let mut out = vec![0f32; docs.len() * h];
        let pad = self.encoder.config.pad_token_id;
        let _no_grad = tch::no_grad_guard();
        let (started, mut last_log, mut done) = (std::time::Instant::now(), std::time::Instant::now(), 0usize);
        for chunk in order.chunks(self.settings.batch_size.max(1) as usize) {
            let width = chunk.iter().map(|&i| ids[i].len()).max().unwrap_or(1).max(1);
            let mut flat = Vec::with_capacity(chunk.len() * width);
            let mut mask = Vec::with_capacity(chunk.len() * width);
            for &i in chunk {
                let row = &ids[i];
                flat.extend(row.iter().map(|&t| i64::from(t)));
                flat.extend(std::iter::repeat_n(pad, width - row.len()));
                mask.extend(std::iter::repeat_n(1i64, row.len()));
                mask.extend(std::iter::repeat_n(0i64, width - row.len()));
            }
            let shape = [chunk.len() as i64, width as i64];
            let ids_t = Tensor::from_slice(&flat).view(shape).to_device(self.device);
            let mask_t = Tensor::from_slice(&mask).view(shape).to_device(self.device);
            let pooled = pool(&self.encoder.forward(&ids_t, &mask_t), &mask_t, self.settings.pooling);
            let pooled = Vec::<f32>::try_from(pooled.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?;
            for (k, &i) in chunk.iter().enumerate() {
                out[i * h..(i + 1) * h].copy_from_slice(&pooled[k * h..(k + 1) * h]);
            }
            done += chunk.len();
            // A big encoder on a CPU takes minutes over a corpus: say how far it is.
            if last_log.elapsed().as_secs() >= 10 {
                last_log = std::time::Instant::now();
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(done, of = docs.len(), seconds, "embedding texts with the frozen encoder");
            }
        }
        Ok(out)
    }
}
