//! `sweep validate FILE`: offline, every trial with its resolved config.

use std::path::PathBuf;

use serde_json::json;

use crate::output::{self, params_inline, Format};

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
    /// Grid size cap (the coordinator's --max-trials).
    #[arg(long, default_value_t = 100_000)]
    max_trials: u64,
}

pub fn run(a: Args, fmt: Format) -> anyhow::Result<()> {
    let (_, spec, trials) = super::read_sweep_file(&a.file, sweep_file::Limits { max_trials: a.max_trials })?;
    match fmt {
        Format::Json => output::print_json(&output::validated_json(&spec, &trials)),
        Format::Table => {
            let mut t = output::table(&["#", "params", "hash"]);
            for (i, tr) in trials.iter().enumerate() {
                t.add_row(vec![(i + 1).to_string(), params_inline(&json!(tr.params)), tr.hash[..12].to_string()]);
            }
            println!("{t}");
            eprintln!("{}: valid, {} {} trials", a.file.display(), trials.len(), spec.method().as_str());
        }
    }
    Ok(())
}
