//! What trials and sweeps cost. An instance's cost is its fleet's price over its hours
//! (`fleet_usd`, the price history integrated: a spot price read again while it runs
//! starts a new segment). A trial's share: each of its attempts on a fleet instance's
//! worker costs the fleet's price over the attempt's lease time (claim to end, from
//! `trial_attempts`), over the worker's slots (a worker running 4 trials at once charges
//! each a quarter). What no attempt used (boot, idle, the scale-in wait) stays the
//! fleet's. Work on workers outside fleets costs nothing here. A sweep's cost is the
//! sum of its trials'.

use std::collections::HashMap;

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

/// Per attempt: its trial, its sweep, its cost in USD so far (a running one up to now).
const ATTEMPT_COSTS: &str = "
    SELECT a.trial_id, t.sweep_id,
           fleet_usd(f.id, a.started_at, coalesce(a.ended_at, now())) / greatest(w.slots, 1) AS usd
    FROM trial_attempts a
    JOIN trials t ON t.id = a.trial_id
    JOIN workers w ON w.id = a.worker_id
    JOIN instances i ON i.worker_id = a.worker_id
    JOIN fleets f ON f.id = i.fleet_id";

/// Each trial of the sweep (all, or those in `only`) that has cost something, in USD so far.
pub async fn trials(db: impl PgExecutor<'_>, sweep: Uuid, only: Option<&[Uuid]>) -> Result<HashMap<Uuid, f64>> {
    let rows: Vec<(Uuid, f64)> = sqlx::query_as(&format!(
        "SELECT trial_id, sum(usd)::float8
         FROM ({ATTEMPT_COSTS} WHERE t.sweep_id = $1 AND ($2::uuid[] IS NULL OR t.id = ANY($2))) c
         GROUP BY trial_id"
    ))
    .bind(sweep)
    .bind(only)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The sweep's cost in USD so far.
pub async fn sweep(db: impl PgExecutor<'_>, sweep: Uuid) -> Result<f64> {
    let usd: Option<f64> =
        sqlx::query_scalar(&format!("SELECT sum(usd)::float8 FROM ({ATTEMPT_COSTS} WHERE t.sweep_id = $1) c"))
            .bind(sweep)
            .fetch_one(db)
            .await?;
    Ok(usd.unwrap_or(0.0))
}

/// What the sweep had spent when each of its finished trials (all, or those in `only`)
/// finished: the same rule as [`sweep`], counted up to each trial's end, for every
/// trial in one read of the sweep's attempts. Trials that have not finished are absent.
pub async fn spent_when_finished(db: &sqlx::PgPool, sweep: Uuid, only: Option<&[Uuid]>) -> Result<HashMap<Uuid, f64>> {
    // Each attempt on a priced instance, cut at the fleet's price changes: (start, end,
    // USD per second).
    let attempts: Vec<(f64, f64, f64)> = sqlx::query_as(
        "SELECT extract(epoch FROM greatest(a.started_at, p.since))::float8,
                extract(epoch FROM least(coalesce(a.ended_at, now()), p.until))::float8,
                (p.usd_per_hour / 3600.0 / greatest(w.slots, 1))::float8
         FROM trial_attempts a
         JOIN trials t ON t.id = a.trial_id
         JOIN workers w ON w.id = a.worker_id
         JOIN instances i ON i.worker_id = a.worker_id
         JOIN LATERAL (SELECT usd_per_hour, since,
                              coalesce(lead(since) OVER (ORDER BY since), 'infinity'::timestamptz) AS until
                       FROM fleet_prices WHERE fleet_id = i.fleet_id) p
              ON p.since < coalesce(a.ended_at, now()) AND p.until > a.started_at
         WHERE t.sweep_id = $1 AND p.usd_per_hour > 0",
    )
    .bind(sweep)
    .fetch_all(db)
    .await?;
    if attempts.is_empty() {
        return Ok(HashMap::new()); // nothing paid for: no trial has a spend to show
    }
    let finished: Vec<(Uuid, f64)> = sqlx::query_as(
        "SELECT id, extract(epoch FROM finished_at)::float8 FROM trials
         WHERE sweep_id = $1 AND finished_at IS NOT NULL AND ($2::uuid[] IS NULL OR id = ANY($2))",
    )
    .bind(sweep)
    .bind(only)
    .fetch_all(db)
    .await?;
    let at: Vec<f64> = finished.iter().map(|f| f.1).collect();
    let spent = spend_at(&attempts, &at);
    Ok(finished.into_iter().map(|f| f.0).zip(spent).collect())
}

/// What intervals (start, end, rate) have accrued by each time in `at`: the sum over
/// intervals of rate x (min(end, t) - start), when positive. One pass over the sorted
/// starts, ends and times: spent(t) = ended + rate_open x t - (rate x start)_open.
pub fn spend_at(intervals: &[(f64, f64, f64)], at: &[f64]) -> Vec<f64> {
    // Events: 0 = an interval starts, 1 = one ends, 2 = a time asked (after both at a tie).
    let mut events: Vec<(f64, u8, usize)> = Vec::with_capacity(2 * intervals.len() + at.len());
    for (i, &(s, e, _)) in intervals.iter().enumerate() {
        events.push((s, 0, i));
        events.push((e.max(s), 1, i));
    }
    events.extend(at.iter().enumerate().map(|(k, &t)| (t, 2, k)));
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut ended, mut rate, mut rate_start) = (0.0, 0.0, 0.0);
    let mut out = vec![0.0; at.len()];
    for (t, kind, i) in events {
        match kind {
            0 => {
                rate += intervals[i].2;
                rate_start += intervals[i].2 * intervals[i].0;
            }
            1 => {
                let (s, e, r) = intervals[i];
                rate -= r;
                rate_start -= r * s;
                ended += r * (e.max(s) - s);
            }
            _ => out[i] = (ended + rate * t - rate_start).max(0.0),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::spend_at;

    #[test]
    fn what_has_accrued_by_each_time_is_the_sum_of_clipped_intervals() {
        // Two intervals at 1 and 2 USD/s, overlapping; a third that never started by t.
        let iv = [(0.0, 10.0, 1.0), (5.0, 8.0, 2.0), (20.0, 30.0, 4.0)];
        let at = [0.0, 4.0, 6.0, 8.0, 10.0, 25.0, 100.0];
        let brute: Vec<f64> = at
            .iter()
            .map(|&t| iv.iter().map(|&(s, e, r): &(f64, f64, f64)| r * (e.min(t) - s).max(0.0)).sum())
            .collect();
        let got = spend_at(&iv, &at);
        for (g, b) in got.iter().zip(&brute) {
            assert!((g - b).abs() < 1e-9, "{got:?} vs {brute:?}");
        }
        assert_eq!(brute, vec![0.0, 4.0, 8.0, 14.0, 16.0, 36.0, 56.0]);
    }
}
