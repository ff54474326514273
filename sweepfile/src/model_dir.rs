//! A Hugging Face model directory read without loading it: `config.json` into what the
//! encoder needs (the architecture and its sizes: BERT, RoBERTa and its layout's XLM-R
//! and CamemBERT, DistilBERT; anything else is one line naming the file and its
//! `model_type`), the tensor shapes from `model.safetensors`' header, and the ids
//! `tokenizer.json` can produce. [`check_model_dir`] holds them against each other, so
//! `sweep submit` refuses a directory that cannot work before anything is uploaded or
//! stored, with the line the trainer would say; the trainer loads the weights after the
//! same check. (Reading these files is the one IO this crate does.)

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

type Result<T> = std::result::Result<T, String>;

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

fn int(v: &Value, path: &Path, key: &str) -> Result<i64> {
    v.get(key)
        .and_then(Value::as_i64)
        .filter(|&n| n >= 0)
        .ok_or_else(|| format!("{}: `{key}` is missing or not a non-negative integer", path.display()))
}

fn float_or(v: &Value, key: &str, default: f64) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn activation(path: &Path, name: &str) -> Result<Activation> {
    Ok(match name {
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        other => {
            return Err(format!("{}: activation `{other}` is not supported (gelu, gelu_new, relu)", path.display()))
        }
    })
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

impl EncoderConfig {
    /// Reads `config.json` at `path`.
    pub fn read(path: &Path) -> Result<EncoderConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("").to_string();
        let arch = match model_type.as_str() {
            "bert" => Arch::Bert,
            "roberta" | "xlm-roberta" | "camembert" => Arch::Roberta,
            "distilbert" => Arch::DistilBert,
            other => {
                return Err(format!(
                    "{}: model_type `{other}` is not supported (bert, roberta, xlm-roberta, camembert, distilbert)",
                    path.display()
                ))
            }
        };
        if let Some(kind) = v.get("position_embedding_type").and_then(Value::as_str) {
            ensure(kind == "absolute", || {
                format!("{}: position_embedding_type `{kind}` is not supported (absolute)", path.display())
            })?;
        }
        // DistilBERT names the same sizes its own way, and has no token types.
        let distil = arch == Arch::DistilBert;
        let key = |bert: &'static str, distilbert: &'static str| if distil { distilbert } else { bert };
        let cfg = EncoderConfig {
            arch,
            vocab: int(&v, path, "vocab_size")?,
            hidden: int(&v, path, key("hidden_size", "dim"))?,
            layers: int(&v, path, key("num_hidden_layers", "n_layers"))? as usize,
            heads: int(&v, path, key("num_attention_heads", "n_heads"))?,
            intermediate: int(&v, path, key("intermediate_size", "hidden_dim"))?,
            positions: int(&v, path, "max_position_embeddings")?,
            type_vocab: if distil { 0 } else { int(&v, path, "type_vocab_size")? },
            eps: if distil { 1e-12 } else { float_or(&v, "layer_norm_eps", 1e-12) },
            pad_token_id: v.get("pad_token_id").and_then(Value::as_i64).unwrap_or(0),
            activation: activation(
                path,
                v.get(key("hidden_act", "activation")).and_then(Value::as_str).unwrap_or("gelu"),
            )?,
            hidden_dropout: float_or(&v, key("hidden_dropout_prob", "dropout"), 0.1),
            attention_dropout: float_or(&v, key("attention_probs_dropout_prob", "attention_dropout"), 0.1),
            model_type,
        };
        ensure(cfg.heads > 0 && cfg.hidden > 0 && cfg.hidden % cfg.heads == 0, || {
            format!("{}: hidden size {} is not a multiple of {} attention heads", path.display(), cfg.hidden, cfg.heads)
        })?;
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

/// Each tensor's shape, from a safetensors file's header (its first 8 bytes give the
/// header's length; the header is JSON). Only the header is read.
pub fn safetensors_shapes(path: &Path) -> Result<BTreeMap<String, Vec<i64>>> {
    use std::io::Read;
    let bad = |why: String| format!("{}: not a safetensors file: {why}", path.display());
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let len = u64::from_le_bytes(len);
    if len > size.saturating_sub(8) || len > 100 << 20 {
        return Err(bad(format!("a header of {len} bytes in a file of {size}")));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let v: BTreeMap<String, Value> = serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
    Ok(v.into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .filter_map(|(name, t)| {
            let shape = t.get("shape")?.as_array()?.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>()?;
            Some((name, shape))
        })
        .collect())
}

/// One past the largest id `tokenizer.json` can produce (its model's vocabulary and its
/// added tokens).
pub fn tokenizer_ids(path: &Path) -> Result<i64> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let vocab = &v["model"]["vocab"];
    let model = match vocab {
        // WordPiece, BPE, WordLevel: token -> id.
        Value::Object(m) => m.values().filter_map(Value::as_i64).max().map_or(0, |m| m + 1),
        // Unigram: [token, score] pairs, ids in order.
        Value::Array(a) => a.len() as i64,
        _ => return Err(format!("{}: not a tokenizer (no model.vocab)", path.display())),
    };
    let added = v["added_tokens"].as_array().into_iter().flatten().filter_map(|t| t["id"].as_i64()).max();
    Ok(model.max(added.map_or(0, |a| a + 1)))
}

/// The prefix a checkpoint's encoder tensors carry (`bert.` when saved from a task
/// model), found by the word-embedding table.
pub fn weights_prefix(names: impl Fn(&str) -> bool) -> Option<&'static str> {
    ["", "bert.", "roberta.", "distilbert.", "model."]
        .into_iter()
        .find(|p| names(&format!("{p}embeddings.word_embeddings.weight")))
}

/// Holds a model directory's three files against each other and `max_length` (tokens
/// per text, special tokens included): one line naming the file for the first problem.
pub fn check_model_dir(dir: &Path, max_length: u32) -> Result<EncoderConfig> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory (a Hugging Face model directory)", dir.display()));
    }
    for f in crate::ENCODER_FILES {
        ensure(dir.join(f).is_file(), || {
            format!(
                "{}: no {f} (a model directory needs {}; save it with save_pretrained and tokenizer.save_pretrained)",
                dir.display(),
                crate::ENCODER_FILES.join(", ")
            )
        })?;
    }
    let cfg = EncoderConfig::read(&dir.join("config.json"))?;
    let weights = dir.join("model.safetensors");
    let shapes = safetensors_shapes(&weights)?;
    let prefix = weights_prefix(|n| shapes.contains_key(n))
        .ok_or_else(|| format!("{}: missing tensor `embeddings.word_embeddings.weight`", weights.display()))?;
    for (name, rows) in [("word_embeddings", cfg.vocab), ("position_embeddings", cfg.positions)] {
        let full = format!("{prefix}embeddings.{name}.weight");
        let shape = shapes.get(&full).ok_or_else(|| format!("{}: missing tensor `{full}`", weights.display()))?;
        ensure(shape[..] == [rows, cfg.hidden], || {
            format!(
                "{}: tensor `{full}` has shape {shape:?}, config.json says {:?}",
                weights.display(),
                [rows, cfg.hidden]
            )
        })?;
    }
    let tokenizer = dir.join("tokenizer.json");
    let ids = tokenizer_ids(&tokenizer)?;
    ensure(ids <= cfg.vocab, || {
        format!(
            "{}: ids up to {}, but the model's embedding table has {} rows (a tokenizer of another model?)",
            tokenizer.display(),
            ids - 1,
            cfg.vocab
        )
    })?;
    let max = cfg.max_tokens();
    ensure(i64::from(max_length) <= max, || {
        format!(
            "model.max_length: {max_length} is beyond {}'s position table ({max} tokens, special tokens included)",
            dir.join("config.json").display()
        )
    })?;
    Ok(cfg)
}
