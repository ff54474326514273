"""The linear reference for bench/text.sh: scikit-learn's TfidfVectorizer (the same
settings as the sweep's featurizer) and one-vs-rest logistic regression with balanced
class weights, C chosen on dev macro-F1 from a small grid; thresholds tuned on dev
exactly as Sweep tunes them (trainer/src/metrics.rs: a global threshold for micro-F1,
per-label thresholds shrunk toward it for macro-F1, kept only where they beat 0.5 on
dev); test micro-F1, macro-F1 and the macro-F1 of the 9 rarest labels.

    python bench/text_reference.py DIR --ngram 1 2 --min-df 2 --max-features 50000 --sublinear
prints one JSON object.
"""

import argparse
import csv
import json
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier

BINS, SHRINK, MIN_POS = 100, 10.0, 5


def read(path, n_labels):
    texts, y = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            texts.append(row["text"])
            labels = [int(x) for x in row["label"].split(",") if x]
            y.append([1 if j in labels else 0 for j in range(n_labels)])
    return texts, np.array(y, dtype=np.uint8)


def f1(tp, fp, fn):
    d = 2 * tp + fp + fn
    return 0.0 if d == 0 else 2 * tp / d


def best_k(score):
    best = (BINS // 2, score(BINS // 2))
    for k in range(1, BINS):
        s = score(k)
        if s > best[1] + 1e-12 or (abs(s - best[1]) <= 1e-12 and abs(k - BINS // 2) < abs(best[0] - BINS // 2)):
            best = (k, s)
    return best[0]


def tune(probs, y):
    """Sweep's threshold rule (metrics::tune and tune_checked), on float32 probabilities."""
    p = probs.astype(np.float32)
    bins = np.minimum((p * np.float32(BINS)).astype(np.int64), BINS - 1)
    n, l = y.shape
    pos_ge = np.zeros((l, BINS + 1)); neg_ge = np.zeros((l, BINS + 1))
    for j in range(l):
        pos = np.bincount(bins[y[:, j] == 1, j], minlength=BINS)
        neg = np.bincount(bins[y[:, j] == 0, j], minlength=BINS)
        pos_ge[j, :BINS] = np.cumsum(pos[::-1])[::-1]
        neg_ge[j, :BINS] = np.cumsum(neg[::-1])[::-1]
    total = pos_ge[:, 0]
    kg = best_k(lambda k: f1(pos_ge[:, k].sum(), neg_ge[:, k].sum(), total.sum() - pos_ge[:, k].sum()))
    glob = kg / BINS
    per = np.full(l, glob, dtype=np.float64)
    for j in range(l):
        if total[j] >= MIN_POS:
            kj = best_k(lambda k: f1(pos_ge[j, k], neg_ge[j, k], total[j] - pos_ge[j, k]))
            w = total[j] / (total[j] + SHRINK)
            per[j] = w * kj / BINS + (1 - w) * glob
    per = per.astype(np.float32)
    glob32 = np.float32(glob)
    half = np.full(l, 0.5, dtype=np.float32)
    pred = lambda th: (p >= th).astype(np.uint8)
    micro = lambda th: f1_score(y, pred(th), average="micro", zero_division=0)
    macro = lambda th: f1_score(y, pred(th), average="macro", zero_division=0)
    if micro(np.full(l, glob32)) < micro(half):
        glob32 = np.float32(0.5)
    if macro(per) < macro(half):
        per = half
    return np.full(l, glob32, dtype=np.float32), per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--ngram", type=int, nargs=2, default=[1, 2])
    ap.add_argument("--min-df", type=int, default=2)
    ap.add_argument("--max-features", type=int, default=50000)
    ap.add_argument("--sublinear", action="store_true")
    ap.add_argument("--c", type=float, nargs="+", default=[0.5, 2.0, 8.0])
    a = ap.parse_args()
    started = time.time()
    names = [l.strip() for l in open(f"{a.dir}/labels.txt", encoding="utf-8") if l.strip()]
    (xtr, ytr), (xva, yva), (xte, yte) = (read(f"{a.dir}/{s}.tsv", len(names)) for s in ("train", "dev", "test"))
    vec = TfidfVectorizer(ngram_range=tuple(a.ngram), min_df=a.min_df, max_features=a.max_features, sublinear_tf=a.sublinear)
    Xtr, Xva, Xte = vec.fit_transform(xtr), vec.transform(xva), vec.transform(xte)
    best = None
    for c in a.c:
        clf = OneVsRestClassifier(LogisticRegression(C=c, class_weight="balanced", solver="liblinear", max_iter=1000))
        clf.fit(Xtr, ytr)
        pva = clf.predict_proba(Xva)
        _, per = tune(pva, yva)
        score = f1_score(yva, (pva.astype(np.float32) >= per).astype(np.uint8), average="macro", zero_division=0)
        if best is None or score > best[0]:
            best = (score, c, clf, pva)
    _, c, clf, pva = best
    glob, per = tune(pva, yva)
    pte = clf.predict_proba(Xte).astype(np.float32)
    rarest = np.argsort(ytr.sum(axis=0), kind="stable")[:9]
    per_label = f1_score(yte, (pte >= per).astype(np.uint8), average=None, zero_division=0)
    print(json.dumps({
        "model": f"tfidf {a.ngram} + one-vs-rest logistic regression, balanced, C={c}",
        "features": Xtr.shape[1],
        "test_f1_micro_tuned": f1_score(yte, (pte >= glob).astype(np.uint8), average="micro", zero_division=0),
        "test_f1_macro_tuned": f1_score(yte, (pte >= per).astype(np.uint8), average="macro", zero_division=0),
        "test_f1_macro_rarest9": float(per_label[rarest].mean()),
        "rarest9": [names[j] for j in rarest],
        "seconds": time.time() - started,
    }))


if __name__ == "__main__":
    main()
