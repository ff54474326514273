#!/usr/bin/env python3
"""Reference values for the trainer's losses: the mean loss and its gradient with respect
to the logits, computed in float64 by bench/losses.py (plain PyTorch from the authors'
definitions) on seeded random logits. The batch has a row with no positive label, a label
with no positive in the batch, and training counts that include 0 and n (the clamped cases).

    $SWEEP_VENV/bin/python trainer/tests/reference/make_losses.py > trainer/tests/reference/losses.json
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../bench"))
import losses  # noqa: E402

ROWS, LABELS, N = 7, 6, 100
COUNTS = [0, 3, 50, 99, 100, 12]
NONE = {"scheme": "none", "cap": 10.0, "beta": 0.999}
DB = {"alpha": 0.1, "beta": 10.0, "mu": 0.9, "kappa": 0.05, "lambda": 2.0, "gamma": 2.0, "focal_alpha": 0.5}
ASL = {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05, "eps": 1e-8}
CASES = [
    ("bce", {"kind": "bce", "class_weight": NONE, "focal_gamma": 0.0, "focal_alpha": -1.0}),
    ("focal, neg_pos cap 7", {"kind": "bce", "class_weight": {"scheme": "neg_pos", "cap": 7.0, "beta": 0.999},
                               "focal_gamma": 2.0, "focal_alpha": 0.25}),
    ("asl, authors' defaults", {"kind": "asl", "class_weight": NONE, "focal_gamma": 0.0, "focal_alpha": -1.0,
                                "asl": ASL}),
    ("asl, no clip, gamma_pos 1, neg_pos_sqrt cap 5",
     {"kind": "asl", "class_weight": {"scheme": "neg_pos_sqrt", "cap": 5.0, "beta": 0.999}, "focal_gamma": 0.0,
      "focal_alpha": -1.0, "asl": {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.0, "eps": 1e-8}}),
    ("db, text defaults", {"kind": "db", "class_weight": NONE, "focal_gamma": 0.0, "focal_alpha": -1.0, "db": DB}),
    ("db, other settings, no focal",
     {"kind": "db", "class_weight": NONE, "focal_gamma": 0.0, "focal_alpha": -1.0,
      "db": {"alpha": 0.5, "beta": 4.0, "mu": 0.2, "kappa": 0.1, "lambda": 5.0, "gamma": 0.0, "focal_alpha": 0.3}}),
]


def batch(seed):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-6, 6, size=(ROWS, LABELS))
    z[1, 0], z[2, 1] = 25.0, -25.0  # saturated sigmoids
    y = (rng.uniform(size=(ROWS, LABELS)) < 0.35).astype(np.float64)
    y[0, :] = 0  # a row with no positive label
    y[:, 5] = 0  # a label with no positive in the batch
    y[3, 2] = 1  # at least one positive elsewhere
    return z, y


def main():
    torch.set_default_dtype(torch.float64)
    out = []
    for i, (name, cfg) in enumerate(CASES):
        z, y = batch(i)
        logits = torch.tensor(z, requires_grad=True)
        fn = losses.build(cfg, COUNTS, N, dtype=torch.float64)
        loss = fn(logits, torch.tensor(y)).mean()
        loss.backward()
        out.append({"name": name, "loss_config": cfg, "counts": COUNTS, "n": N, "logits": z.tolist(),
                    "targets": y.tolist(), "loss": loss.item(), "grad": logits.grad.tolist()})
    json.dump({"generated_by": "trainer/tests/reference/make_losses.py", "cases": out}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
