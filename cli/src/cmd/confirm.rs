//! `sweep confirm ID --top K --replicas N`: re-runs the K best configurations of a sweep
//! on fresh seeds (above every seed the search used, against the winner's curse), as a
//! new sweep linked to its source by name and description. `sweep best` on it then ranks
//! them with intervals and the paired test on seeds no search decision saw.

use serde_json::{json, Value};

use crate::client::{status_error, sweep_and_trials, Conn};
use crate::output::{self, Format};
use crate::replicas;

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
    /// How many of the best configurations to re-run.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Runs per configuration, each on fresh seeds.
    #[arg(long, default_value_t = 5)]
    replicas: u32,
    /// Follow progress until the confirmation ends.
    #[arg(long)]
    watch: bool,
}

fn section<'a>(doc: &'a mut serde_norway::Mapping, key: &str) -> &'a mut serde_norway::Mapping {
    let k = serde_norway::Value::from(key);
    if !doc.get(&k).is_some_and(|v| v.is_mapping()) {
        doc.insert(k.clone(), serde_norway::Value::Mapping(Default::default()));
    }
    doc.get_mut(&k).and_then(|v| v.as_mapping_mut()).expect("a mapping")
}

/// The confirmation's sweep file: the source's, with its parameters replaced by the top
/// configurations, fresh base seeds, N replicas, no early stopping.
pub fn confirm_yaml(
    source: &str,
    name: &str,
    description: &str,
    configurations: &[Value],
    replicas: u32,
    fresh_seed: u64,
) -> anyhow::Result<String> {
    let mut doc: serde_norway::Value = serde_norway::from_str(source)?;
    let m = doc.as_mapping_mut().ok_or_else(|| anyhow::anyhow!("the source sweep file is not a mapping"))?;
    for k in ["parameters", "run_cap", "early_stop", "configurations"] {
        m.remove(k);
    }
    m.insert("name".into(), name.into());
    m.insert("description".into(), description.into());
    m.insert("method".into(), "grid".into());
    m.insert("replicas".into(), replicas.into());
    section(m, "train").insert("seed".into(), fresh_seed.into());
    section(m, "dataset").insert("split_seed".into(), fresh_seed.into());
    let list: Vec<serde_norway::Value> = configurations.iter().map(serde_norway::to_value).collect::<Result<_, _>>()?;
    m.insert("configurations".into(), serde_norway::Value::Sequence(list));
    Ok(serde_norway::to_string(&doc)?)
}

/// The name of `sweep`'s confirmation sweep (what `sweep best` looks it up by).
pub fn confirm_name(sweep: &sweep_proto::Sweep) -> String {
    let short = &sweep.sweep_id[..8.min(sweep.sweep_id.len())];
    format!("{}-confirm-{short}", sweep.name)
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    anyhow::ensure!(a.top >= 1, "--top must be at least 1");
    anyhow::ensure!((2..=100).contains(&a.replicas), "--replicas: 2 to 100 (intervals need at least 2)");
    let mut c = conn.connect().await?;
    let (sweep, trials) = sweep_and_trials(&mut c, &a.sweep_id, "confirm").await?;
    let configs = replicas::configurations(&sweep, &trials, &crate::objectives::Rules::of(&sweep));
    anyhow::ensure!(!configs.is_empty(), "sweep {} has no succeeded trial to confirm", a.sweep_id);
    let top: Vec<Value> = configs.iter().take(a.top).map(|c| c.params.clone()).collect();
    let configs_json: Vec<Value> = trials.iter().filter_map(|t| serde_json::from_str(&t.config_json).ok()).collect();
    let used = configs_json
        .iter()
        .flat_map(|c: &Value| [c["train"]["seed"].as_u64(), c["dataset"]["split_seed"].as_u64()])
        .flatten()
        .max()
        .unwrap_or(0);
    let fresh = used + 1;
    let name = confirm_name(&sweep);
    let description = format!(
        "confirms sweep {} ({}): its top {} configurations, {} replicas each, on seeds from {fresh}",
        sweep.sweep_id,
        sweep.name,
        top.len(),
        a.replicas
    );
    let yaml = confirm_yaml(&sweep.spec_yaml, &name, &description, &top, a.replicas, fresh)?;
    // The same data as the source: its file names the same paths, bound to the same blobs.
    sweep_file::parse_and_expand(&yaml, &name, sweep_file::Limits { max_trials: u64::MAX })?;
    let r = c
        .submit_sweep(sweep_proto::SubmitSweepRequest {
            spec_yaml: yaml,
            source_name: name.clone(),
            data_blobs: sweep.data_blobs.clone(),
        })
        .await
        .map_err(|s| status_error("confirm", s))?
        .into_inner();
    match fmt {
        Format::Json => output::print_json(&json!({
            "sweep_id": r.sweep_id,
            "confirms": sweep.sweep_id,
            "configurations": top,
            "replicas": a.replicas,
            "seeds_from": fresh,
            "trials": r.trials_total,
        })),
        Format::Table => {
            println!("{}", r.sweep_id);
            eprintln!("{description}: {} trials", r.trials_total);
        }
    }
    if a.watch {
        super::watch::follow(&mut c, &r.sweep_id).await?;
    }
    Ok(())
}
