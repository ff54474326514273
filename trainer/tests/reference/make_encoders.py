"""Tiny randomly initialised encoders in Hugging Face's own format, and what
`transformers` and `tokenizers` compute with them: the reference the trainer's encoder
tests compare against (no weights are downloaded; nothing here needs the network).

    python make_encoders.py OUT_DIR

writes OUT_DIR/<arch>/{config.json, model.safetensors, tokenizer.json} for BERT (saved
with the `bert.` prefix of a masked-LM checkpoint), RoBERTa (a bare model, no prefix),
XLM-R (a Unigram tokenizer, as SentencePiece models convert) and DistilBERT, and
OUT_DIR/reference.json: per architecture the token ids of every text (truncated to
`max_length`, special tokens included) and the last hidden states of a padded batch.
"""

import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertModel, RobertaConfig,
                          RobertaModel, XLMRobertaConfig, XLMRobertaModel)

MAX_LENGTH = 24

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Sports: the home team won the championship game on Sunday night!",
    "Technology & computing: new GPUs train transformers faster than ever.",
    "Café au lait, crème brûlée and naïve façades in Zürich.",
    "東京の天気は晴れです。 Weather in Tokyo is sunny.",
    "Emoji test 🎉🚀 and symbols ©®™ — dashes – and “quotes”.",
    "Personal finance: how to save for retirement in your thirties",
    "Health and fitness: running, cycling and swimming every week",
    "A very long document " + " ".join(f"word{i} sentence{i % 7} topic{i % 3}" for i in range(60)),
    "",
    "   leading and trailing spaces   ",
    "UPPER case and MiXeD Case words",
]


def wordpiece(corpus):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus * 3, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return tok


def byte_bpe(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus * 3, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def unigram(corpus):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.UnigramTrainer(vocab_size=250, special_tokens=special, unk_token="<unk>")
    tok.train_from_iterator(corpus * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.decoder = decoders.Metaspace()
    return tok


def build(arch, vocab):
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    if arch == "bert":
        cfg = BertConfig(vocab_size=vocab, max_position_embeddings=64, type_vocab_size=2, pad_token_id=0, **small)
        return BertForMaskedLM(cfg)
    if arch == "roberta":
        cfg = RobertaConfig(vocab_size=vocab, max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=1,
                            pad_token_id=1, hidden_act="gelu_new", **small)
        return RobertaModel(cfg, add_pooling_layer=False)
    if arch == "xlm-roberta":
        cfg = XLMRobertaConfig(vocab_size=vocab, max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=1,
                               pad_token_id=1, **small)
        return XLMRobertaModel(cfg)
    cfg = DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                           max_position_embeddings=64, pad_token_id=0)
    return DistilBertModel(cfg)


def main(out):
    torch.manual_seed(0)
    tokenizers = {"bert": wordpiece, "roberta": byte_bpe, "xlm-roberta": unigram, "distilbert": wordpiece}
    reference = {"max_length": MAX_LENGTH, "texts": CORPUS, "models": {}}
    for arch, make in tokenizers.items():
        d = os.path.join(out, arch)
        os.makedirs(d, exist_ok=True)
        tok = make(CORPUS)
        model = build(arch, tok.get_vocab_size()).eval()
        model.save_pretrained(d, safe_serialization=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        tok.enable_truncation(MAX_LENGTH)
        ids = [e.ids for e in tok.encode_batch(CORPUS)]
        pad = tok.token_to_id("[PAD]") if tok.token_to_id("[PAD]") is not None else tok.token_to_id("<pad>")
        width = max(len(i) for i in ids)
        batch = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
        base = model.bert if arch == "bert" else model
        with torch.no_grad():
            hidden = base(input_ids=batch, attention_mask=mask).last_hidden_state
        reference["models"][arch] = {"ids": ids, "hidden": hidden.flatten().tolist(), "shape": list(hidden.shape)}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f)


if __name__ == "__main__":
    main(sys.argv[1])
