#!/usr/bin/env python3
"""The scipy values search/tests/stats.rs checks against:
    $SWEEP_VENV/bin/python search/tests/reference/make_stats.py"""
import numpy as np
import scipy.stats as st

for xs in ([0.61, 0.58, 0.66, 0.62, 0.59], [0.30, 0.34]):
    lo, hi = st.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=st.sem(xs))
    print("summary", xs, np.mean(xs), np.std(xs, ddof=1), (hi - lo) / 2)
for a, b in (([0.4716, 0.4742, 0.4690], [0.4694, 0.4703, 0.4685]),
             ([0.60, 0.62, 0.58, 0.65, 0.61, 0.63], [0.59, 0.60, 0.59, 0.61, 0.60, 0.60])):
    r = st.ttest_rel(a, b)
    print("paired", a, b, r.statistic, r.pvalue)
# Cross-validation: Nadeau and Bengio's corrected resampled t-test and interval (2003),
# variance factor 1/n + n_test/n_train (k folds: 1/(k-1)).
for a, b, r in (([0.60, 0.62, 0.58, 0.65, 0.61, 0.63], [0.59, 0.60, 0.59, 0.61, 0.60, 0.60], 1 / 4),
                ([0.71, 0.69, 0.74, 0.70, 0.72, 0.68, 0.73, 0.70, 0.71, 0.72],
                 [0.70, 0.67, 0.71, 0.70, 0.69, 0.67, 0.70, 0.69, 0.70, 0.70], 1 / 4)):
    d = np.subtract(a, b)
    n = len(d)
    t = d.mean() / np.sqrt((1 / n + r) * np.var(d, ddof=1))
    print("corrected paired", r, t, 2 * st.t.sf(abs(t), n - 1))
    half = st.t.ppf(0.975, n - 1) * np.std(a, ddof=1) * np.sqrt(1 / n + r)
    print("corrected interval", r, half)
