//! `tokenizer.json` read with the `tokenizers` crate (pure Rust: its regex backend is
//! fancy-regex, not Oniguruma), offline. Token ids equal the Python `tokenizers`'
//! (checked on a corpus with Unicode and long texts). Truncation keeps the head, or
//! the head and the tail (a quarter of the budget from the start, the rest from the end:
//! Sun et al. 2019 found head 128 + tail 382 best for long documents at 512 tokens);
//! special tokens are added after truncation, within `max_length`.

use std::path::{Path, PathBuf};

use sweep_file::Truncation;
use tokenizers::{Encoding, PostProcessor, Tokenizer, TruncationDirection};

pub struct TextTokenizer {
    tok: Tokenizer,
    file: PathBuf,
    /// Special tokens a single text gets ([CLS] and [SEP], <s> and </s>).
    special: usize,
}

impl TextTokenizer {
    /// Reads `file`, checking its vocabulary fits an embedding table of `vocab` rows.
    pub fn load(file: &Path, vocab: i64) -> anyhow::Result<TextTokenizer> {
        let mut tok =
            Tokenizer::from_file(file).map_err(|e| anyhow::anyhow!("{}: not a tokenizer: {e}", file.display()))?;
        // What the file may say about truncation and padding is replaced by the trial's.
        tok.with_truncation(None).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        tok.with_padding(None);
        let ids = tok.get_vocab(true).values().max().map_or(0, |&m| i64::from(m) + 1);
        anyhow::ensure!(
            ids <= vocab,
            "{}: ids up to {}, but the model's embedding table has {vocab} rows (a tokenizer of another model?)",
            file.display(),
            ids - 1
        );
        let special = tok.get_post_processor().map_or(0, |p| p.added_tokens(false));
        Ok(TextTokenizer { tok, file: file.to_path_buf(), special })
    }

    /// The ids of one text, special tokens included, at most `max_length` of them.
    pub fn encode(&self, text: &str, max_length: usize, truncation: Truncation) -> anyhow::Result<Vec<u32>> {
        let err = |e: tokenizers::Error| anyhow::anyhow!("{}: {e}", self.file.display());
        let mut enc: Encoding = self.tok.encode(text, false).map_err(err)?;
        let budget = max_length.saturating_sub(self.special);
        if enc.len() > budget {
            match truncation {
                Truncation::Head => enc.truncate(budget, 0, TruncationDirection::Right),
                Truncation::HeadTail => {
                    let head_len = budget / 4;
                    let mut tail = enc.clone();
                    tail.truncate(budget - head_len, 0, TruncationDirection::Left);
                    enc.truncate(head_len, 0, TruncationDirection::Right);
                    enc.merge_with(tail, false);
                }
            }
            enc.set_overflowing(vec![]);
        }
        let enc = self.tok.post_process(enc, None, true).map_err(err)?;
        Ok(enc.get_ids().to_vec())
    }
}
