"""The encoder benchmark's PyTorch side (bench/encoder.sh).

    encoder_ref.py make DIR TEXTS [--tiny]   a BERT-base shaped random model (12 layers,
                                             768 wide; --tiny: 2 x 64) with a WordPiece
                                             tokenizer trained on TEXTS, saved as
                                             Hugging Face saves one
    encoder_ref.py forward DIR TEXTS MAXLEN  transformers' embedding pass over TEXTS as
                                             Sweep's frozen tier batches it (32 texts,
                                             sorted by length, no gradients): JSON with
                                             tokens, seconds, tokens_per_s
    encoder_ref.py finetune DIR TEXTS MAXLEN STEPS
                                             forward + backward + AdamW of the encoder
                                             with a linear head, batch 32, for STEPS
                                             steps: JSON with tokens_per_s and the peak
                                             resident memory (what one fine-tune costs)
TEXTS is a file of one text per line. Threads: torch's default (all cores).
"""

import json
import resource
import sys
import time

import torch


def texts(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def make(out, corpus, tiny):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts(corpus), trainers.WordPieceTrainer(vocab_size=8000, special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    size = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256) if tiny else {}
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, **size)).save_pretrained(out, safe_serialization=True)
    tok.save(f"{out}/tokenizer.json")


def batches(d, corpus, max_length):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(f"{d}/tokenizer.json")
    tok.enable_truncation(max_length)
    ids = [e.ids for e in tok.encode_batch(texts(corpus))]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for k in range(0, len(order), 32):
        rows = [ids[i] for i in order[k:k + 32]]
        width = max(len(r) for r in rows)
        x = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        yield x, mask, sum(len(r) for r in rows)


def forward(d, corpus, max_length):
    from transformers import BertModel

    model = BertModel.from_pretrained(d, add_pooling_layer=False).eval()
    t0, tokens = time.perf_counter(), 0
    with torch.no_grad():
        for x, mask, n in batches(d, corpus, max_length):
            model(input_ids=x, attention_mask=mask).last_hidden_state[:, 0]
            tokens += n
    s = time.perf_counter() - t0
    print(json.dumps({"tokens": tokens, "seconds": s, "tokens_per_s": tokens / s}))


def finetune(d, corpus, max_length, steps):
    from transformers import BertModel

    model = BertModel.from_pretrained(d, add_pooling_layer=False).train()
    head = torch.nn.Linear(model.config.hidden_size, 28)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=2e-5)
    t0, tokens, done = time.perf_counter(), 0, 0
    for x, mask, n in batches(d, corpus, max_length):
        if done == steps:
            break
        logits = head(model(input_ids=x, attention_mask=mask).last_hidden_state[:, 0])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens, done = tokens + n, done + 1
    s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens": tokens, "seconds": s, "tokens_per_s": tokens / s, "steps": done, "peak_mib": peak}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], sys.argv[3], "--tiny" in sys.argv)
    elif cmd == "forward":
        forward(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        finetune(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
