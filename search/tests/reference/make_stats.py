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
