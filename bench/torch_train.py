#!/usr/bin/env python3
"""The same trial in PyTorch: data, split, model, init, loss, optimiser, schedule and
early stopping as `sweep-worker train`, for parity and speed comparisons.

    torch_train.py --config TRIAL.json [--device cpu|cuda] [--seed N] [--out RESULT.json]

Untuned test F1 is computed with scikit-learn's f1_score, so parity also checks the
worker's F1 against the reference implementation.
"""
import argparse, json, math, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import losses  # noqa: E402  (bench/losses.py)
from sklearn.metrics import f1_score

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.next() % (i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def read_labels(xml):
    import re
    return [m.replace("&quot;", '"').replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            for m in re.findall(r'<label name="([^"]*)"', open(xml).read())]


def read_arff(path, labels):
    attrs, rows, in_data = [], [], False
    with open(path) as f:
        for line in f:
            t = line.strip()
            if not t or t.startswith("%"):
                continue
            if not in_data:
                low = t.lower()
                if low.startswith("@attribute"):
                    rest = t[10:].strip()
                    if rest[0] in "'\"":
                        name = rest[1:rest.index(rest[0], 1)]
                    else:
                        name = rest.split()[0]
                    attrs.append(name)
                elif low.startswith("@data"):
                    in_data = True
                continue
            rows.append(t)
    lab = {n: i for i, n in enumerate(labels)}
    cols, nf = [], 0
    for a in attrs:
        if a in lab:
            cols.append(("l", lab[a]))
        else:
            cols.append(("f", nf)); nf += 1
    X = np.zeros((len(rows), nf), dtype=np.float32)
    Y = np.zeros((len(rows), len(labels)), dtype=np.uint8)
    dense = True
    for r, t in enumerate(rows):
        if t.startswith("{"):
            dense = False
            pairs = [p.split() for p in t[1:-1].split(",") if p.strip()]
            items = [(int(i), float(v)) for i, v in pairs]
        else:
            items = list(enumerate(float(v) for v in t.split(",")))
        for c, v in items:
            kind, k = cols[c]
            if kind == "f":
                X[r, k] = v
            else:
                Y[r, k] = 1 if v != 0 else 0
    return X, Y, dense


def synthetic(cfg):
    sys.exit("torch_train.py: the synthetic generator is not reimplemented here; use a mulan dataset")


def load(cfg):
    d = cfg["dataset"]
    base = os.environ.get("SWEEP_DATA_DIR", "../shared/datasets")
    if d["kind"] != "mulan":
        synthetic(d)
    name = d["name"]
    root = os.path.join(base, "mulan", name)
    labels = read_labels(os.path.join(root, f"{name}.xml"))
    Xtr, Ytr, dense = read_arff(os.path.join(root, f"{name}-train.arff"), labels)
    Xte, Yte, _ = read_arff(os.path.join(root, f"{name}-test.arff"), labels)
    perm = SplitMix64(d.get("split_seed", 0)).permutation(len(Xtr))
    n_val = max(1, int(len(Xtr) * d.get("val_fraction", 0.1)))
    val_rows, tr_rows = sorted(perm[:n_val]), sorted(perm[n_val:])
    Xva, Yva, Xtr, Ytr = Xtr[val_rows], Ytr[val_rows], Xtr[tr_rows], Ytr[tr_rows]
    if dense:
        mean = Xtr.astype(np.float64).mean(0)
        std = Xtr.astype(np.float64).std(0)
        std[std < 1e-12] = 1.0
        Xtr, Xva, Xte = [((x - mean) / std).astype(np.float32) for x in (Xtr, Xva, Xte)]
    return Xtr, Ytr, Xva, Yva, Xte, Yte


LOW32 = 0xFFFFFFFF


def hash32(x):
    """The worker's 32-bit integer hash (trainer/src/model.rs), on ints or int64 tensors."""
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & LOW32
    x = x ^ (x >> 12)
    x = (x * 0x297A2D39) & LOW32
    return x ^ (x >> 15)


class HashDropout(nn.Module):
    """The worker's dropout: the mask of (trial seed, step, layer) from a counter-based
    hash instead of the global generator, kept elements scaled by 1/(1-p) as nn.Dropout."""

    def __init__(self, p, seed, layer, counter):
        super().__init__()
        self.p, self.layer, self.counter = p, layer, counter
        self.seed_key = SplitMix64(seed ^ 0xD8090F5ED0B711E5).next() & LOW32

    def forward(self, h):
        if not self.training:
            return h
        step_key = SplitMix64((self.counter[0] * 64 + self.layer) & MASK).next() & LOW32
        key = hash32(self.seed_key ^ step_key)
        idx = torch.arange(h.numel(), device=h.device, dtype=torch.int64).view(h.shape)
        bits = hash32((idx + key) & LOW32)
        u = (bits >> 8).to(torch.float32) * (1.0 / 16777216.0)
        p = torch.tensor(self.p, dtype=torch.float32, device=h.device)
        keep = torch.tensor(1.0 - self.p, dtype=torch.float32, device=h.device)
        return h * ((u >= p).to(torch.float32) / keep)


def mlp(d, hidden, l, dropout, seed, counter):
    layers, prev = [], d
    for i, h in enumerate(hidden):
        layers += [nn.Linear(prev, h), nn.ReLU()] + ([HashDropout(dropout, seed, i, counter)] if dropout > 0 else [])
        prev = h
    layers.append(nn.Linear(prev, l))  # nn.Linear's default init: U(+-1/sqrt(fan_in))
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    tr = cfg["train"]
    seed = tr.get("seed", 0) if a.seed is None else a.seed
    dev = torch.device(a.device)
    Xtr, Ytr, Xva, Yva, Xte, Yte = load(cfg)
    torch.manual_seed(seed)
    n, d, l = Xtr.shape[0], Xtr.shape[1], Ytr.shape[1]
    xtr, ytr = torch.tensor(Xtr, device=dev), torch.tensor(Ytr, device=dev).float()
    xva, yva = torch.tensor(Xva, device=dev), torch.tensor(Yva, device=dev).float()
    xte, yte = torch.tensor(Xte, device=dev), torch.tensor(Yte, device=dev).float()
    loss_fn = losses.build(cfg["loss"], Ytr.sum(0), n, dev)
    counter = [0]  # optimiser steps so far: the dropout masks' step
    model = mlp(d, cfg["model"]["hidden"], l, cfg["model"]["dropout"], seed, counter).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=tr["lr"], weight_decay=tr["weight_decay"])
    metric = cfg["metric"]["name"].split(".", 1)[1]
    maximize = cfg["metric"]["goal"] == "maximize"
    bs = min(tr["batch_size"], n)

    def evaluate(x, y):
        model.eval()
        with torch.no_grad():
            logits = model(x)
            probs = torch.sigmoid(logits).cpu().numpy()
            loss = loss_fn(logits, y).mean().item()
        model.train()
        return probs, loss

    def f1s(probs, Y):
        P = (probs >= 0.5).astype(np.uint8)
        return {k: f1_score(Y, P, average=k, zero_division=0) for k in ("micro", "macro")}

    best, best_state, best_epoch, since, train_s, seen = None, None, 0, 0, 0.0, 0
    for epoch in range(1, tr["epochs"] + 1):
        t0 = time.perf_counter()
        perm = SplitMix64((seed * 1_000_003 + epoch) & MASK).permutation(n)
        perm = torch.tensor(perm, device=dev)
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            loss = loss_fn(model(xtr[idx]), ytr[idx]).mean()
            opt.zero_grad()
            loss.backward()
            if tr.get("grad_clip", 0) > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tr["grad_clip"])
            opt.step()
            counter[0] += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()
        train_s += time.perf_counter() - t0
        seen += n
        probs, vloss = evaluate(xva, yva)
        if metric == "loss":
            obj = vloss
        else:
            obj = f1s(probs, Yva)[metric.split("_")[1]] if metric in ("f1_micro", "f1_macro") else sys.exit(f"objective {metric}: only val.f1_micro, val.f1_macro, val.loss here")
        if best is None or (obj > best if maximize else obj < best):
            best, best_epoch, since = obj, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if tr.get("patience", 0) > 0 and since >= tr["patience"]:
                break
    model.load_state_dict(best_state)
    probs, _ = evaluate(xte, yte)
    f = f1s(probs, Yte)
    res = {"metrics": {"test.f1_micro": f["micro"], "test.f1_macro": f["macro"], "best_epoch": best_epoch,
                       "samples_per_s": seen / train_s}, "seed": seed, "device": str(dev)}
    out = json.dumps(res, indent=2)
    if a.out:
        open(a.out, "w").write(out)
    else:
        print(out)


if __name__ == "__main__":
    main()
