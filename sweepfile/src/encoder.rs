//! `model: {kind: encoder, path: DIR, freeze: true}`: a pretrained Hugging Face encoder
//! (BERT, RoBERTa, XLM-R, DistilBERT) under the trial's head. Frozen, it is the text
//! dataset's featurizer ([`EncoderFeatures`], set on the dataset when the config is
//! resolved): each document's pooled embedding is computed once per machine and the
//! trials train heads on those, fused as MLP trials are. The model directory is a data
//! file of the dataset (role `encoder`), uploaded as one archive like the others.

use serde::{Deserialize, Serialize};

/// What the model section trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The MLP over the dataset's features.
    #[default]
    Mlp,
    /// A pretrained encoder with the MLP (`hidden: []`: linear) as its head.
    Encoder,
}

/// How a document's token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The first token's state ([CLS], <s>).
    #[default]
    Cls,
    /// The mean of the real tokens' states.
    Mean,
}

/// Which tokens a text longer than `max_length` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    #[default]
    Head,
    /// A quarter of the budget from the start, the rest from the end.
    HeadTail,
}

/// A frozen encoder as a text dataset's featurizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderFeatures {
    /// The model directory as written (cleared once bound to its uploaded archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub pooling: Pooling,
    pub max_length: u32,
    pub truncation: Truncation,
    /// Documents per forward pass while embedding (does not change the numbers).
    pub batch_size: u32,
}

pub(crate) fn default_max_length() -> u32 {
    128
}

pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

pub(crate) fn is_default_max_length(v: &u32) -> bool {
    *v == default_max_length()
}

/// The files of a model directory an encoder reads (and what its archive holds).
pub const ENCODER_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
