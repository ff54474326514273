//! The offline commands: `sweep-worker train` (trials alone, no coordinator: one config,
//! several one after another, or several as one stack) and `sweep-worker predict` (a
//! saved model on a data file). The agent runs the same trainer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use sweep_file::{DatasetConfig, TrialConfig};
use sweep_trainer::{data, train};

/// `sweep-worker train`'s arguments.
pub struct TrainArgs<'a> {
    pub configs: &'a [PathBuf],
    pub device: &'a str,
    pub fused: bool,
    pub out: Option<&'a Path>,
    pub out_dir: Option<&'a Path>,
    pub model_out: Option<&'a Path>,
    /// Keep (and reuse) featurized text datasets here, as a worker does in its cache.
    pub cache_dir: Option<&'a Path>,
}

/// The configs, each checked, and the names their results are written under.
fn read_configs(paths: &[PathBuf]) -> anyhow::Result<(Vec<TrialConfig>, Vec<String>)> {
    let mut cfgs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let cfg = crate::agent::parse_config(&text)
            .with_context(|| format!("{}: not a valid trial config", path.display()))?;
        cfgs.push(cfg);
    }
    let stems: Vec<String> = paths
        .iter()
        .map(|p| p.file_stem().map_or_else(|| "trial".into(), |s| s.to_string_lossy().into_owned()))
        .collect();
    let mut seen = BTreeSet::new();
    if let Some(dup) = stems.iter().find(|s| !seen.insert(s.as_str())) {
        bail!("two configs are named `{dup}`: their results would overwrite each other in --out-dir");
    }
    Ok((cfgs, stems))
}

/// Each distinct dataset the configs name, loaded once.
fn load_datasets(
    cfgs: &[TrialConfig],
    device: tch::Device,
    cache: &data::DatasetCache,
) -> anyhow::Result<Vec<(DatasetConfig, Arc<data::Dataset>)>> {
    let mut datasets: Vec<(DatasetConfig, Arc<data::Dataset>)> = Vec::new();
    for cfg in cfgs {
        if !datasets.iter().any(|(d, _)| *d == cfg.dataset) {
            let ds = cache.get(&cfg.dataset)?;
            eprintln!(
                "dataset {}: train {} val {} test {}, {} features, {} labels; device {device:?}",
                ds.name, ds.train.n, ds.val.n, ds.test.n, ds.features, ds.labels
            );
            datasets.push((cfg.dataset.clone(), ds));
        }
    }
    Ok(datasets)
}

/// `sweep-worker train`: the trials, their epochs on stderr, their results as JSON.
pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    if a.configs.len() > 1 && a.out_dir.is_none() {
        bail!("{} configs: name --out-dir DIR for their results", a.configs.len());
    }
    let (cfgs, stems) = read_configs(a.configs)?;
    let device = train::device(a.device)?;
    sweep_trainer::encoder::use_device(device);
    let cache = a.cache_dir.map_or_else(data::DatasetCache::default, |d| data::DatasetCache::with_dir(d.to_path_buf()));
    let datasets = load_datasets(&cfgs, device, &cache)?;
    if a.fused && datasets.len() > 1 {
        bail!("--fused: the configs name {} different datasets; a stack trains on one", datasets.len());
    }
    let dataset_of = |cfg: &TrialConfig| &datasets.iter().find(|(d, _)| *d == cfg.dataset).expect("loaded").1;
    let many = cfgs.len() > 1;
    let mut progress = |i: usize, r: &train::EpochReport| {
        let m = &r.metrics;
        let who = if many { format!("{:<12} ", stems[i]) } else { String::new() };
        let val = match (m.get("val.f1_micro"), m.get("val.f1_macro")) {
            (Some(micro), Some(macro_)) => format!("val.f1_micro {micro:.4}  val.f1_macro {macro_:.4}"),
            _ => "(no validation rows: a refit's final model)".into(),
        };
        eprintln!(
            "{who}epoch {:>3}  train.loss {:.5}  {val}  {:.0} samples/s",
            r.epoch, m["train.loss"], m["samples_per_s"]
        );
    };
    let controls: Vec<train::Control> = cfgs.iter().map(|_| train::Control::default()).collect();
    let started = std::time::Instant::now();
    let results: Vec<Result<train::TrialResult, train::TrainError>> = if a.fused {
        let refs: Vec<&train::Control> = controls.iter().collect();
        train::train_fused(&datasets[0].1, &cfgs, device, &mut progress, &refs)
    } else {
        let load = |d: &DatasetConfig| cache.get(d).map_err(|e| train::TrainError::User(e.to_string()));
        let mut one = |(i, cfg): (usize, &TrialConfig)| match cfg.dataset.cv_refit {
            true => train::train_refit(cfg, &load, device, &mut |r| progress(i, r), &controls[i]),
            false => train::train_one(dataset_of(cfg), cfg, device, &mut |r| progress(i, r), &controls[i]),
        };
        cfgs.iter().enumerate().map(&mut one).collect()
    };
    if many {
        let how = if a.fused { ", fused" } else { "" };
        eprintln!("{} trials in {:.2} s{how}", cfgs.len(), started.elapsed().as_secs_f64());
    }
    write_results(&a, &stems, results)
}

/// Writes each result (and model, when asked); a failure among several is counted, one
/// alone is the error.
fn write_results(
    a: &TrainArgs,
    stems: &[String],
    results: Vec<Result<train::TrialResult, train::TrainError>>,
) -> anyhow::Result<()> {
    let (many, mut failed) = (results.len() > 1, 0);
    let total = results.len();
    for (i, res) in results.into_iter().enumerate() {
        let res = match res {
            Ok(r) => r,
            Err(e) if many => {
                eprintln!("{}: {e}", a.configs[i].display());
                failed += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let json = serde_json::to_string_pretty(&res)?;
        let (result_path, model_dir) = match a.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
                (Some(dir.join(format!("{}.json", stems[i]))), a.model_out.map(|m| m.join(&stems[i])))
            }
            None => (a.out.map(Path::to_path_buf), a.model_out.map(Path::to_path_buf)),
        };
        if let (Some(dir), Some(model)) = (model_dir, &res.model) {
            model.write_dir(&dir)?;
        }
        match result_path {
            Some(p) => std::fs::write(&p, json).with_context(|| format!("write {}", p.display()))?,
            None => println!("{json}"),
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} trials failed");
    }
    Ok(())
}

/// `sweep-worker predict`: scores `input` with the model in `model`.
pub fn predict(model: &Path, input: &Path, out: &Path, device: &str, thresholds: &str) -> anyhow::Result<()> {
    use sweep_trainer::artifact::{predict_file, ThresholdChoice};
    let choice = if thresholds == "per-label" { ThresholdChoice::PerLabel } else { ThresholdChoice::Global };
    let rows = predict_file(model, input, out, train::device(device)?, choice)?;
    eprintln!("{rows} rows scored, written to {}", out.display());
    Ok(())
}
