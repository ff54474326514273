//! A Hugging Face `config.json` read into what the encoder needs: the architecture and
//! its sizes. BERT, RoBERTa (and XLM-R, CamemBERT: RoBERTa's layout) and DistilBERT;
//! anything else is one line naming the file and its `model_type`.

use std::path::Path;

use serde_json::Value;

/// Which layout the weights have and how positions are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Positions 0.. ; token type 0 for every token.
    Bert,
    /// Positions counted from `pad_token_id + 1` over real tokens only (padding keeps
    /// `pad_token_id`); token type 0.
    Roberta,
    /// Positions 0.. ; no token types; `q_lin`/`k_lin`/... names.
    DistilBert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// The exact (erf) GELU.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    Relu,
}

#[derive(Debug, Clone)]
pub struct EncoderConfig {
    pub arch: Arch,
    pub model_type: String,
    pub vocab: i64,
    pub hidden: i64,
    pub layers: usize,
    pub heads: i64,
    pub intermediate: i64,
    pub positions: i64,
    /// Rows of the token-type table (0 for DistilBERT).
    pub type_vocab: i64,
    pub eps: f64,
    pub pad_token_id: i64,
    pub activation: Activation,
    /// Dropout after embeddings, attention output and feed-forward output.
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
}

fn int(v: &Value, path: &Path, key: &str) -> anyhow::Result<i64> {
    v.get(key)
        .and_then(Value::as_i64)
        .filter(|&n| n >= 0)
        .ok_or_else(|| anyhow::anyhow!("{}: `{key}` is missing or not a non-negative integer", path.display()))
}

fn float_or(v: &Value, key: &str, default: f64) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn activation(path: &Path, name: &str) -> anyhow::Result<Activation> {
    Ok(match name {
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        other => anyhow::bail!("{}: activation `{other}` is not supported (gelu, gelu_new, relu)", path.display()),
    })
}

impl EncoderConfig {
    /// Reads `config.json` at `path`.
    pub fn read(path: &Path) -> anyhow::Result<EncoderConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?;
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("").to_string();
        let arch = match model_type.as_str() {
            "bert" => Arch::Bert,
            "roberta" | "xlm-roberta" | "camembert" => Arch::Roberta,
            "distilbert" => Arch::DistilBert,
            other => anyhow::bail!(
                "{}: model_type `{other}` is not supported (bert, roberta, xlm-roberta, camembert, distilbert)",
                path.display()
            ),
        };
        if let Some(kind) = v.get("position_embedding_type").and_then(Value::as_str) {
            anyhow::ensure!(
                kind == "absolute",
                "{}: position_embedding_type `{kind}` is not supported (absolute)",
                path.display()
            );
        }
        let cfg = if arch == Arch::DistilBert {
            anyhow::ensure!(
                v.get("sinusoidal_pos_embds").and_then(Value::as_bool) != Some(true)
                    || v.get("max_position_embeddings").is_some(),
                "{}: sinusoidal position embeddings without max_position_embeddings",
                path.display()
            );
            EncoderConfig {
                arch,
                vocab: int(&v, path, "vocab_size")?,
                hidden: int(&v, path, "dim")?,
                layers: int(&v, path, "n_layers")? as usize,
                heads: int(&v, path, "n_heads")?,
                intermediate: int(&v, path, "hidden_dim")?,
                positions: int(&v, path, "max_position_embeddings")?,
                type_vocab: 0,
                eps: 1e-12,
                pad_token_id: v.get("pad_token_id").and_then(Value::as_i64).unwrap_or(0),
                activation: activation(path, v.get("activation").and_then(Value::as_str).unwrap_or("gelu"))?,
                hidden_dropout: float_or(&v, "dropout", 0.1),
                attention_dropout: float_or(&v, "attention_dropout", 0.1),
                model_type,
            }
        } else {
            EncoderConfig {
                arch,
                vocab: int(&v, path, "vocab_size")?,
                hidden: int(&v, path, "hidden_size")?,
                layers: int(&v, path, "num_hidden_layers")? as usize,
                heads: int(&v, path, "num_attention_heads")?,
                intermediate: int(&v, path, "intermediate_size")?,
                positions: int(&v, path, "max_position_embeddings")?,
                type_vocab: int(&v, path, "type_vocab_size")?,
                eps: float_or(&v, "layer_norm_eps", 1e-12),
                pad_token_id: v.get("pad_token_id").and_then(Value::as_i64).unwrap_or(0),
                activation: activation(path, v.get("hidden_act").and_then(Value::as_str).unwrap_or("gelu"))?,
                hidden_dropout: float_or(&v, "hidden_dropout_prob", 0.1),
                attention_dropout: float_or(&v, "attention_probs_dropout_prob", 0.1),
                model_type,
            }
        };
        anyhow::ensure!(
            cfg.heads > 0 && cfg.hidden > 0 && cfg.hidden % cfg.heads == 0,
            "{}: hidden size {} is not a multiple of {} attention heads",
            path.display(),
            cfg.hidden,
            cfg.heads
        );
        Ok(cfg)
    }

    /// The longest input the position table takes, special tokens included (RoBERTa's
    /// positions start after `pad_token_id`).
    pub fn max_tokens(&self) -> i64 {
        match self.arch {
            Arch::Roberta => self.positions - self.pad_token_id - 1,
            Arch::Bert | Arch::DistilBert => self.positions,
        }
    }
}
