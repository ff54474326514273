//! Asynchronous successive halving, the stopping variant (as Optuna's
//! `SuccessiveHalvingPruner` and Ray's `ASHAScheduler` in stop mode): rungs at
//! `min_epochs * reduction_factor^k` epochs; a trial reaching a rung continues only if its
//! objective is among the top 1/reduction_factor of every value recorded at that rung so
//! far (itself included). While a rung has fewer than `reduction_factor` values, only a
//! trial at least as good as the best so far continues (nothing can be paused and resumed).

/// Whether a trial goes on from a rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Stop,
}

/// The rung epochs below `max_epochs`: min, min*eta, min*eta^2, ... (a trial that reaches
/// `max_epochs` has finished, there is nothing left to decide).
pub fn rungs(min_epochs: u32, reduction_factor: u32, max_epochs: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut r = u64::from(min_epochs.max(1));
    while r < u64::from(max_epochs) {
        out.push(r as u32);
        r *= u64::from(reduction_factor.max(2));
    }
    out
}

/// The decision for `value` at a rung where `competing` are all values recorded there so
/// far, `value` included.
pub fn decide(value: f64, competing: &[f64], reduction_factor: u32, maximize: bool) -> Decision {
    let mut sorted: Vec<f64> = competing.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() || !value.is_finite() {
        return Decision::Stop;
    }
    sorted.sort_by(f64::total_cmp);
    // How many may go on: the top len/eta, and at least the best one.
    let k = (sorted.len() / reduction_factor.max(2) as usize).max(1);
    let keep = if maximize { value >= sorted[sorted.len() - k] } else { value <= sorted[k - 1] };
    if keep {
        Decision::Continue
    } else {
        Decision::Stop
    }
}
