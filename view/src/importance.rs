//! Parameter importance: Breiman's permutation importance of a random forest fitted on
//! (parameters -> objective). Each tree is a regression tree grown on a bootstrap sample;
//! a parameter's importance is how much the tree's squared error on the rows it did not
//! see (out of bag) grows when that parameter's values are shuffled among them, averaged
//! over the trees. Shares are those increases clipped at zero over their sum, so they
//! add up to 1 (all zero when nothing the forest learned holds out of bag).
//!
//! Numbers are read as numbers; any other value (a loss kind, a bool) is a category,
//! placed on the axis by its mean objective (Breiman's ordering for a categorical split
//! in regression: the best split over the ordered categories is the best over subsets).

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Trees in the forest, and at most this many rows in each tree's bootstrap sample
/// (a 10,000-trial sweep still answers in well under a second).
const TREES: usize = 64;
const SAMPLE: usize = 2_000;
const MAX_DEPTH: usize = 10;
const MIN_LEAF: usize = 2;

/// One parameter's importance.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    pub parameter: String,
    /// Share of the total (0..=1, summing to 1 over the parameters when any is positive).
    pub share: f64,
    /// Mean increase of the out-of-bag squared error when the parameter is shuffled.
    pub mse_increase: f64,
}

/// Importance of each parameter that takes more than one value, most important first.
/// `rows` are (parameters object, objective); rows with a non-finite objective are
/// left out. Fewer than 8 usable rows: nothing to say (empty).
pub fn importance(rows: &[(&Value, f64)], seed: u64) -> Vec<Importance> {
    let rows: Vec<(&Value, f64)> = rows.iter().copied().filter(|(_, y)| y.is_finite()).collect();
    let (names, x) = features(&rows);
    if rows.len() < 8 || names.is_empty() {
        return vec![];
    }
    let y: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let mut rng = SplitMix(seed);
    let n = y.len();
    let mut increase = vec![0.0; names.len()];
    let mut scored = 0usize;
    for _ in 0..TREES {
        let sample: Vec<usize> = (0..n.min(SAMPLE)).map(|_| rng.below(n)).collect();
        let mut seen = vec![false; n];
        sample.iter().for_each(|&i| seen[i] = true);
        let oob: Vec<usize> = (0..n).filter(|&i| !seen[i]).collect();
        if oob.len() < 2 {
            continue;
        }
        let tree = Tree::grow(&x, &y, sample);
        let base = tree.mse(&x, &y, &oob, None);
        for (f, inc) in increase.iter_mut().enumerate() {
            let mut shuffled: Vec<usize> = oob.clone();
            rng.shuffle(&mut shuffled);
            *inc += tree.mse(&x, &y, &oob, Some((f, &shuffled))) - base;
        }
        scored += 1;
    }
    let mean: Vec<f64> = increase.iter().map(|v| v / scored.max(1) as f64).collect();
    let total: f64 = mean.iter().map(|v| v.max(0.0)).sum();
    let mut out: Vec<Importance> = names
        .into_iter()
        .zip(mean)
        .map(|(parameter, m)| Importance {
            parameter,
            share: if total > 0.0 { m.max(0.0) / total } else { 0.0 },
            mse_increase: m,
        })
        .collect();
    out.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.parameter.cmp(&b.parameter)));
    out
}

/// As JSON: the method and one entry per parameter.
pub fn importance_json(found: &[Importance]) -> Value {
    json!({
        "method": "permutation importance (out-of-bag) of a random forest fitted on parameters -> objective",
        "parameters": found.iter().map(|i| json!({"parameter": i.parameter, "share": i.share, "mse_increase": i.mse_increase})).collect::<Vec<_>>(),
    })
}

/// The parameters that vary, and each row's value of each (columns).
fn features(rows: &[(&Value, f64)]) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut values: BTreeMap<&str, Vec<Option<&Value>>> = BTreeMap::new();
    for (i, (p, _)) in rows.iter().enumerate() {
        for (k, v) in p.as_object().into_iter().flatten() {
            values.entry(k.as_str()).or_insert_with(|| vec![None; rows.len()])[i] = Some(v);
        }
    }
    let mut names = vec![];
    let mut columns = vec![];
    for (name, col) in values {
        if name == "dataset.fold" {
            continue;
        }
        let column = encode(&col, rows);
        let first = column[0];
        if column.iter().all(|v| *v == first) {
            continue;
        }
        names.push(name.to_string());
        columns.push(column);
    }
    (names, columns)
}

/// Numbers as numbers (when every present value is one); otherwise categories ranked by
/// their mean objective. A missing value is its own category (or -inf among numbers).
fn encode(col: &[Option<&Value>], rows: &[(&Value, f64)]) -> Vec<f64> {
    if col.iter().flatten().all(|v| v.is_number()) {
        return col.iter().map(|v| v.and_then(Value::as_f64).unwrap_or(f64::NEG_INFINITY)).collect();
    }
    let key = |v: &Option<&Value>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (v, (_, y)) in col.iter().zip(rows) {
        let e = sums.entry(key(v)).or_default();
        (e.0, e.1) = (e.0 + y, e.1 + 1);
    }
    let mut order: Vec<(String, f64)> = sums.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let rank: BTreeMap<String, f64> = order.into_iter().enumerate().map(|(i, (k, _))| (k, i as f64)).collect();
    col.iter().map(|v| rank[&key(v)]).collect()
}

/// A regression tree: nodes in a vector, leaves hold the mean of their rows.
struct Tree {
    nodes: Vec<Node>,
}

enum Node {
    Leaf(f64),
    Split { feature: usize, at: f64, left: usize, right: usize },
}

impl Tree {
    fn grow(x: &[Vec<f64>], y: &[f64], rows: Vec<usize>) -> Tree {
        let mut tree = Tree { nodes: vec![] };
        tree.node(x, y, rows, 0);
        tree
    }

    /// Grows the node for `rows`, returns its index.
    fn node(&mut self, x: &[Vec<f64>], y: &[f64], rows: Vec<usize>, depth: usize) -> usize {
        let at = self.nodes.len();
        let mean = rows.iter().map(|&i| y[i]).sum::<f64>() / rows.len() as f64;
        self.nodes.push(Node::Leaf(mean));
        if depth >= MAX_DEPTH || rows.len() < 2 * MIN_LEAF {
            return at;
        }
        let Some((feature, threshold)) = best_split(x, y, &rows) else { return at };
        let (l, r): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&i| x[feature][i] <= threshold);
        let left = self.node(x, y, l, depth + 1);
        let right = self.node(x, y, r, depth + 1);
        self.nodes[at] = Node::Split { feature, at: threshold, left, right };
        at
    }

    /// Prediction for row `i`, reading feature `f` from row `swap(i)` when given.
    fn predict(&self, x: &[Vec<f64>], i: usize, swap: Option<(usize, usize)>) -> f64 {
        let mut n = 0;
        loop {
            match self.nodes[n] {
                Node::Leaf(v) => return v,
                Node::Split { feature, at, left, right } => {
                    let row = match swap {
                        Some((f, j)) if f == feature => j,
                        _ => i,
                    };
                    n = if x[feature][row] <= at { left } else { right };
                }
            }
        }
    }

    /// Mean squared error over `rows`; with `(f, order)`, feature `f` of `rows[k]` is
    /// read from `order[k]` (a permutation of `rows`).
    fn mse(&self, x: &[Vec<f64>], y: &[f64], rows: &[usize], permuted: Option<(usize, &[usize])>) -> f64 {
        let sum: f64 = rows
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let swap = permuted.map(|(f, order)| (f, order[k]));
                (self.predict(x, i, swap) - y[i]).powi(2)
            })
            .sum();
        sum / rows.len() as f64
    }
}

/// The (feature, threshold) that most reduces the squared error of `rows`, with at
/// least MIN_LEAF rows on each side; None when no split reduces it.
fn best_split(x: &[Vec<f64>], y: &[f64], rows: &[usize]) -> Option<(usize, f64)> {
    let n = rows.len() as f64;
    let total: f64 = rows.iter().map(|&i| y[i]).sum();
    let parent = total * total / n;
    let mut best: Option<(f64, usize, f64)> = None;
    for (f, column) in x.iter().enumerate() {
        let mut order: Vec<usize> = rows.to_vec();
        order.sort_by(|&a, &b| column[a].total_cmp(&column[b]));
        let mut left = 0.0;
        for k in 0..order.len() - 1 {
            left += y[order[k]];
            let (lo, hi) = (column[order[k]], column[order[k + 1]]);
            let nl = (k + 1) as f64;
            if lo == hi || k + 1 < MIN_LEAF || order.len() - k - 1 < MIN_LEAF {
                continue;
            }
            // Between-group sum of squares: maximising it minimises the children's error.
            let gain = left * left / nl + (total - left).powi(2) / (n - nl) - parent;
            if gain > 1e-12 && best.is_none_or(|b| gain > b.0) {
                best = Some((gain, f, lo + (hi - lo) / 2.0));
            }
        }
    }
    best.map(|(_, f, at)| (f, at))
}

/// SplitMix64: a small seeded generator, so the same trials give the same importances.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y = f(lr) + noise; batch size and a loss kind (a category) do nothing. The one
    /// that matters ranks first with most of the importance, on a grid and on random
    /// draws.
    #[test]
    fn the_parameter_that_matters_ranks_first_with_most_of_the_importance() {
        let mut rng = SplitMix(7);
        let mut unit = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let mut params = vec![];
        for _ in 0..300 {
            let lr = 10f64.powf(-4.0 + 3.0 * unit());
            let batch = [32, 64, 128, 256][(unit() * 4.0) as usize];
            let kind = ["bce", "focal", "asl"][(unit() * 3.0) as usize];
            let noise = (unit() - 0.5) * 0.02;
            // A peak at lr = 1e-2.5: about 0.3 of range over the draws.
            let y = 0.5 - 0.1 * (lr.log10() + 2.5).powi(2) + noise;
            params.push((json!({"train.lr": lr, "train.batch_size": batch, "loss.kind": kind}), y));
        }
        let rows: Vec<(&Value, f64)> = params.iter().map(|(p, y)| (p, *y)).collect();
        let got = importance(&rows, 1);
        println!("{got:#?}");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].parameter, "train.lr");
        assert!(got[0].share > 0.9, "{got:?}");
        assert!((got.iter().map(|i| i.share).sum::<f64>() - 1.0).abs() < 1e-9);
        // Deterministic for a seed.
        assert_eq!(importance(&rows, 1), got);
    }

    /// A parameter that takes one value is not listed; too few rows say nothing.
    #[test]
    fn constants_are_left_out_and_few_rows_say_nothing() {
        let params: Vec<(Value, f64)> =
            (0..20).map(|i| (json!({"a": i % 4, "b": 1, "dataset.fold": i % 5}), (i % 4) as f64)).collect();
        let rows: Vec<(&Value, f64)> = params.iter().map(|(p, y)| (p, *y)).collect();
        let got = importance(&rows, 3);
        assert_eq!(got.iter().map(|i| i.parameter.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(importance(&rows[..5], 3).is_empty());
    }
}
