"""Reference statistics for the iterative split (trainer/tests/trainer/split.rs):
iterative-stratification's MultilabelStratifiedShuffleSplit (Sechidis et al. 2011, as
Trent Sorensen's `iterstrat` package implements it) carving 10% of train for validation,
on a long-tailed fixture written into the output and on MULAN's emotions, yeast, bibtex
and delicious training files. Run from this directory with the setup venv's python (and
`pip install iterative-stratification`):

    python make_split.py [DATASETS_DIR]   # writes split.json

For each set and seed 0-19 it records, of the validation part: its rows, the labels
with no positives in it (of those with any training positives, and of those with at
least 1/fraction = 10, for which a proportional share is at least one row), and the
mean absolute difference between a label's validation positives and fraction x its
positives. The test computes the same for Sweep's split and compares.
"""

import json
import re
import sys
from pathlib import Path

import iterstrat
import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

FRACTION = 0.1
SEEDS = range(20)
SETS = ["emotions", "yeast", "bibtex", "delicious"]

ATTR = re.compile(r"@attribute\s+('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)\s", re.I)


def unquote(name):
    if name[:1] in "'\"":
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def label_matrix(train, xml):
    """The 0/1 label matrix of a MULAN training file (labels named in its XML)."""
    names = re.findall(r'<label\s+name="([^"]*)"', xml.read_text())
    attrs, rows, in_data = [], [], False
    for line in train.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("%"):
            continue
        if not in_data:
            m = ATTR.match(s)
            if m:
                attrs.append(unquote(m.group(1)))
            elif s.lower().startswith("@data"):
                in_data = True
                col = {a: i for i, a in enumerate(attrs)}
                label_cols = [col[n] for n in names]
            continue
        if s.startswith("{"):
            values = {}
            for pair in s.strip("{}").split(","):
                if pair.strip():
                    i, v = pair.strip().split(None, 1)
                    values[int(i)] = v.strip("'\"")
            rows.append([1 if values.get(c, "0") == "1" else 0 for c in label_cols])
        else:
            cells = [c.strip().strip("'\"") for c in s.split(",")]
            rows.append([1 if cells[c] == "1" else 0 for c in label_cols])
    return np.array(rows, dtype=np.uint8)


def fixture():
    """A long-tailed fixture: 300 rows, 40 labels, label j on with probability 0.6/(j+1)."""
    rng = np.random.default_rng(20111)
    p = 0.6 / (np.arange(40) + 1)
    return (rng.random((300, 40)) < p).astype(np.uint8)


def stats(y, val):
    n_label = y.sum(axis=0)
    n_val = y[val].sum(axis=0)
    present = n_label > 0
    eligible = n_label >= round(1 / FRACTION)
    return {
        "val_rows": int(len(val)),
        "no_val": int(((n_val == 0) & present).sum()),
        "no_val_eligible": int(((n_val == 0) & eligible).sum()),
        "mean_abs_dev": float(np.abs(n_val - FRACTION * n_label)[present].mean()),
    }


def reference(y):
    out = []
    for seed in SEEDS:
        split = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=FRACTION, random_state=seed)
        _, val = next(split.split(np.zeros(len(y)), y))
        out.append(stats(y, val))
    return out


def main():
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "../../../../shared/datasets") / "mulan"
    fx = fixture()
    out = {
        "fraction": FRACTION,
        "package": f"iterative-stratification {getattr(iterstrat, '__version__', '0.1.9')}",
        "fixture": {"rows": [np.flatnonzero(r).tolist() for r in fx], "labels": int(fx.shape[1]), "seeds": reference(fx)},
    }
    for name in SETS:
        y = label_matrix(data / name / f"{name}-train.arff", data / name / f"{name}.xml")
        out[name] = {"rows": int(y.shape[0]), "labels": int(y.shape[1]), "positives": int(y.sum()), "seeds": reference(y)}
        print(name, y.shape, out[name]["seeds"][0], file=sys.stderr)
    Path("split.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
