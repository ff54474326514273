//! The sweep's objectives and constraints ([`sweep_view::objectives`]) and the front as a
//! table.

pub use sweep_view::objectives::*;

use crate::output::{fmt_metric, params_inline, table};
use crate::replicas::Configuration;

/// The front as a table, best first on the primary objective.
pub fn print_front(rules: &Rules, configs: &[Configuration], front: &[usize]) {
    let names: Vec<String> = rules.objectives.iter().map(|m| format!("{} {}", m.goal.as_str(), m.name)).collect();
    let mut header = vec!["configuration"];
    header.extend(names.iter().map(String::as_str));
    header.push("n");
    let mut t = table(&header);
    for &i in front {
        let c = &configs[i];
        let mut row = vec![params_inline(&c.params)];
        row.extend(means(rules, c).iter().map(|v| fmt_metric(Some(v))));
        row.push(c.summary.n.to_string());
        t.add_row(row);
    }
    println!(
        "Pareto front over {} ({} of {} configurations: no other is at least as good on every objective and better on one):",
        rules.objectives.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(" and "),
        front.len(),
        configs.len()
    );
    println!("{t}");
}
