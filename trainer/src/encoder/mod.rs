//! Pretrained transformer encoders from a Hugging Face model directory
//! (`config.json`, `model.safetensors`, `tokenizer.json`): BERT, RoBERTa (and XLM-R,
//! CamemBERT) and DistilBERT, written on libtorch with Hugging Face's tensor names so a
//! saved checkpoint loads as it is (with or without its task prefix: `bert.`,
//! `roberta.`, `distilbert.`). The forward pass is the one `transformers` computes in
//! evaluation mode (checked to 1e-4 against it, `trainer/tests/trainer/encoder.rs`).
//!
//! What it is used for here: the frozen tier (`model: {kind: encoder, freeze: true}`),
//! where each document's pooled embedding is computed once ([`Embedder`]) and the trials
//! train heads on those. Fine-tuning the encoder itself is not built yet.

mod embed;
mod tokenize;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

pub use embed::Embedder;
pub use sweep_file::{Activation, Arch, EncoderConfig};
pub use tokenize::TextTokenizer;

/// `y = x W^T + b`.
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w, Some(&self.b))
    }
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

/// One transformer block: self-attention, then the feed-forward net, each followed by
/// a residual connection and layer norm (post-norm, as BERT).
struct Block {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    ffn_norm: Norm,
}

/// A loaded encoder.
pub struct Encoder {
    pub config: EncoderConfig,
    words: Tensor,
    positions: Tensor,
    types: Option<Tensor>,
    emb_norm: Norm,
    blocks: Vec<Block>,
}

/// The saved tensors by name, the task prefix taken off, for lookups that say which
/// tensor is missing or misshapen.
struct Weights {
    file: PathBuf,
    named: HashMap<String, Tensor>,
    prefix: String,
    device: Device,
}

impl Weights {
    fn read(file: &Path, device: Device) -> anyhow::Result<Weights> {
        let named: HashMap<String, Tensor> = Tensor::read_safetensors(file)
            .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", file.display()))?
            .into_iter()
            .collect();
        let prefix = sweep_file::weights_prefix(|n| named.contains_key(n))
            .ok_or_else(|| anyhow::anyhow!("{}: missing tensor `embeddings.word_embeddings.weight`", file.display()))?;
        Ok(Weights { file: file.to_path_buf(), named, prefix: prefix.to_string(), device })
    }

    /// Tensor `name` (after the prefix) with shape `shape`, as float32 on the device.
    fn get(&self, name: &str, shape: &[i64]) -> anyhow::Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let t =
            self.named.get(&full).ok_or_else(|| anyhow::anyhow!("{}: missing tensor `{full}`", self.file.display()))?;
        anyhow::ensure!(
            t.size() == shape,
            "{}: tensor `{full}` has shape {:?}, config.json says {shape:?}",
            self.file.display(),
            t.size()
        );
        Ok(t.to_kind(Kind::Float).to_device(self.device))
    }

    fn linear(&self, name: &str, out: i64, inp: i64) -> anyhow::Result<Linear> {
        Ok(Linear {
            w: self.get(&format!("{name}.weight"), &[out, inp])?,
            b: self.get(&format!("{name}.bias"), &[out])?,
        })
    }

    /// A layer norm's weight and bias (`weight`/`bias`, or the `gamma`/`beta` of old
    /// TensorFlow-converted checkpoints).
    fn norm(&self, name: &str, h: i64) -> anyhow::Result<Norm> {
        let old = self.named.contains_key(&format!("{}{name}.gamma", self.prefix));
        let (w, b) = if old { ("gamma", "beta") } else { ("weight", "bias") };
        Ok(Norm { w: self.get(&format!("{name}.{w}"), &[h])?, b: self.get(&format!("{name}.{b}"), &[h])? })
    }
}

impl Encoder {
    /// Loads `dir`'s `config.json` and `model.safetensors`.
    pub fn load(dir: &Path, device: Device) -> anyhow::Result<Encoder> {
        let config = EncoderConfig::read(&dir.join("config.json")).map_err(anyhow::Error::msg)?;
        let w = Weights::read(&dir.join("model.safetensors"), device)?;
        let (h, f) = (config.hidden, config.intermediate);
        let emb = "embeddings";
        let words = w.get(&format!("{emb}.word_embeddings.weight"), &[config.vocab, h])?;
        let positions = w.get(&format!("{emb}.position_embeddings.weight"), &[config.positions, h])?;
        let types = match config.arch {
            Arch::DistilBert => None,
            _ => Some(w.get(&format!("{emb}.token_type_embeddings.weight"), &[config.type_vocab, h])?),
        };
        let emb_norm = w.norm(&format!("{emb}.LayerNorm"), h)?;
        // Each layout's names: the layer's prefix, then q, k, v, the attention's output,
        // its norm, the feed-forward up and down projections, and their norm.
        let names = match config.arch {
            Arch::DistilBert => [
                "transformer.layer",
                "attention.q_lin",
                "attention.k_lin",
                "attention.v_lin",
                "attention.out_lin",
                "sa_layer_norm",
                "ffn.lin1",
                "ffn.lin2",
                "output_layer_norm",
            ],
            Arch::Bert | Arch::Roberta => [
                "encoder.layer",
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
                "attention.output.LayerNorm",
                "intermediate.dense",
                "output.dense",
                "output.LayerNorm",
            ],
        };
        let blocks = (0..config.layers)
            .map(|i| {
                let n = |k: usize| format!("{}.{i}.{}", names[0], names[k]);
                Ok(Block {
                    q: w.linear(&n(1), h, h)?,
                    k: w.linear(&n(2), h, h)?,
                    v: w.linear(&n(3), h, h)?,
                    out: w.linear(&n(4), h, h)?,
                    attn_norm: w.norm(&n(5), h)?,
                    up: w.linear(&n(6), f, h)?,
                    down: w.linear(&n(7), h, f)?,
                    ffn_norm: w.norm(&n(8), h)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Encoder { config, words, positions, types, emb_norm, blocks })
    }

    /// The last hidden states `[batch, tokens, hidden]` of token ids `[batch, tokens]`
    /// whose `mask` (1 = token, 0 = padding) marks what attention may see.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let c = &self.config;
        let (b, l) = (ids.size()[0], ids.size()[1]);
        let device = ids.device();
        let pos = match c.arch {
            // RoBERTa counts positions over the real tokens, from pad_token_id + 1.
            Arch::Roberta => {
                let real = ids.ne(c.pad_token_id).to_kind(Kind::Int64);
                real.cumsum(1, Kind::Int64) * &real + c.pad_token_id
            }
            Arch::Bert | Arch::DistilBert => {
                Tensor::arange(l, (Kind::Int64, device)).unsqueeze(0).expand([b, l], false)
            }
        };
        let mut x = Tensor::embedding(&self.words, ids, -1, false, false)
            + Tensor::embedding(&self.positions, &pos, -1, false, false);
        if let Some(types) = &self.types {
            x += types.get(0);
        }
        let mut x = self.norm(&x, &self.emb_norm);
        let see = mask.ne(0).view([b, 1, 1, l]);
        for block in &self.blocks {
            x = self.block(&x, &see, block);
        }
        x
    }

    fn norm(&self, x: &Tensor, n: &Norm) -> Tensor {
        x.layer_norm([self.config.hidden], Some(&n.w), Some(&n.b), self.config.eps, true)
    }

    fn block(&self, x: &Tensor, see: &Tensor, blk: &Block) -> Tensor {
        let c = &self.config;
        let (b, l) = (x.size()[0], x.size()[1]);
        let heads = |t: Tensor| t.view([b, l, c.heads, c.hidden / c.heads]).transpose(1, 2);
        let (q, k, v) = (heads(blk.q.forward(x)), heads(blk.k.forward(x)), heads(blk.v.forward(x)));
        let ctx = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(see), 0.0, false, None, false);
        let ctx = ctx.transpose(1, 2).contiguous().view([b, l, c.hidden]);
        let a = self.norm(&(blk.out.forward(&ctx) + x), &blk.attn_norm);
        let up = blk.up.forward(&a);
        let up = match c.activation {
            Activation::Gelu => up.gelu("none"),
            Activation::GeluTanh => up.gelu("tanh"),
            Activation::Relu => up.relu(),
        };
        self.norm(&(blk.down.forward(&up) + a), &blk.ffn_norm)
    }

    /// Rows of the word-embedding table (the vocabulary the tokenizer must fit in).
    pub fn vocab(&self) -> i64 {
        self.config.vocab
    }
}

pub use sweep_file::Pooling;

/// `[batch, hidden]`: the first token's state (`cls`) or the mean over real tokens.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Tensor {
    match pooling {
        Pooling::Cls => hidden.select(1, 0),
        Pooling::Mean => {
            let m = mask.to_kind(hidden.kind()).unsqueeze(-1);
            (hidden * &m).sum_dim_intlist(1, false, None) / m.sum_dim_intlist(1, false, None).clamp_min(1.0)
        }
    }
}

/// The device frozen encoders embed on, as the process chose it (`--device`); until
/// chosen, CUDA when libtorch sees a GPU.
static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();

/// Sets the device frozen encoders embed on (once per process; later calls are ignored).
pub fn use_device(device: Device) {
    let _ = DEVICE.set(device);
}

/// Where frozen encoders embed.
pub fn device() -> Device {
    *DEVICE.get_or_init(Device::cuda_if_available)
}
