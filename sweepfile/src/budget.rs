//! What a sweep may spend: `budget: {max_cost_usd: N}`.

use serde::{Deserialize, Serialize};

/// A sweep's budget in dollars: what its trials may cost on priced fleet instances
/// (their share of the instances' time). Trials on workers outside fleets cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub max_cost_usd: f64,
}

/// The largest budget taken: a billion dollars. Anything above is a typo or an attack
/// (1e308 would overflow every sum it enters), refused like a negative amount.
pub const MAX_BUDGET_USD: f64 = 1e9;

impl Budget {
    /// Why the budget is unusable, if it is.
    pub fn problem(&self) -> Option<String> {
        let usd = self.max_cost_usd;
        (!(usd.is_finite() && usd > 0.0 && usd <= MAX_BUDGET_USD)).then(|| {
            format!("{usd} is out of range: a budget is a number of dollars above 0 and at most {MAX_BUDGET_USD:e}")
        })
    }
}
