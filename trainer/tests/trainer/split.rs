//! The validation split: iterative stratification against a reference implementation's
//! split statistics (`reference/split.json`, from `make_split.py`: iterstrat's
//! MultilabelStratifiedShuffleSplit), on a long-tailed fixture and on MULAN's emotions,
//! yeast, bibtex and delicious; the random split's statistics beside them.

use sweep_file::{DatasetConfig, SplitMethod};
use sweep_trainer::data::{self, SplitSettings};

const SEEDS: u64 = 20;

/// What `make_split.py` records of one validation part (summed over seeds here).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    val_rows: usize,
    no_val: usize,
    no_val_eligible: usize,
    mean_abs_dev: f64,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.val_rows += o.val_rows;
        self.no_val += o.no_val;
        self.no_val_eligible += o.no_val_eligible;
        self.mean_abs_dev += o.mean_abs_dev / SEEDS as f64;
    }
}

fn stats(y: &[u8], n: usize, l: usize, val: &[usize], fraction: f64) -> Stats {
    let mut total = vec![0usize; l];
    let mut in_val = vec![0usize; l];
    for r in 0..n {
        for j in (0..l).filter(|&j| y[r * l + j] != 0) {
            total[j] += 1;
        }
    }
    for &r in val {
        for j in (0..l).filter(|&j| y[r * l + j] != 0) {
            in_val[j] += 1;
        }
    }
    let present: Vec<usize> = (0..l).filter(|&j| total[j] > 0).collect();
    let eligible = (1.0 / fraction).round() as usize;
    Stats {
        val_rows: val.len(),
        no_val: present.iter().filter(|&&j| in_val[j] == 0).count(),
        no_val_eligible: present.iter().filter(|&&j| in_val[j] == 0 && total[j] >= eligible).count(),
        mean_abs_dev: present.iter().map(|&j| (in_val[j] as f64 - fraction * total[j] as f64).abs()).sum::<f64>()
            / present.len() as f64,
    }
}

/// Over seeds 0-19: (ours, iterative) and (ours, random).
fn ours(y: &[u8], n: usize, l: usize, fraction: f64) -> (Stats, Stats) {
    let train = data::Split { n, x: data::Features::Dense(vec![0.0; n]), y: y.to_vec() };
    let (mut it, mut rnd) = (Stats::default(), Stats::default());
    for seed in 0..SEEDS {
        for (method, acc) in [(SplitMethod::Iterative, &mut it), (SplitMethod::Random, &mut rnd)] {
            let (_, val) =
                SplitSettings { val_fraction: fraction, seed, method, cv: None, refit: false }.rows(&train, l);
            acc.add(stats(y, n, l, &val, fraction));
        }
    }
    (it, rnd)
}

fn reference_of(v: &serde_json::Value) -> Stats {
    let mut s = Stats::default();
    for r in v["seeds"].as_array().unwrap() {
        s.add(Stats {
            val_rows: r["val_rows"].as_u64().unwrap() as usize,
            no_val: r["no_val"].as_u64().unwrap() as usize,
            no_val_eligible: r["no_val_eligible"].as_u64().unwrap() as usize,
            mean_abs_dev: r["mean_abs_dev"].as_f64().unwrap(),
        });
    }
    s
}

/// Iterative stratification keeps every label that can have a validation positive in
/// validation at least as often as the reference does, deals each label out as evenly
/// (mean |validation positives - fraction x positives| within 25% of the reference's),
/// carves the asked-for share of rows, and leaves far fewer labels without validation
/// positives than a random split. Prints the table (summed over 20 seeds).
#[test]
fn iterative_split_matches_the_reference_and_beats_random() {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../reference/split.json")).expect("split.json");
    let fraction = reference["fraction"].as_f64().unwrap();
    let mut sets: Vec<(String, Vec<u8>, usize, usize)> = Vec::new();
    let fx = &reference["fixture"];
    let (n, l) = (fx["rows"].as_array().unwrap().len(), fx["labels"].as_u64().unwrap() as usize);
    let mut y = vec![0u8; n * l];
    for (r, row) in fx["rows"].as_array().unwrap().iter().enumerate() {
        row.as_array().unwrap().iter().for_each(|j| y[r * l + j.as_u64().unwrap() as usize] = 1);
    }
    sets.push(("fixture".into(), y, n, l));
    for name in ["emotions", "yeast", "bibtex", "delicious"] {
        if sweep_testenv::mulan_dir(name).is_none() {
            continue;
        }
        let raw = data::read(&DatasetConfig::mulan(name)).unwrap();
        assert_eq!(raw.train.n as u64, reference[name]["rows"].as_u64().unwrap(), "{name}: same rows as the reference");
        let positives: u64 = raw.train.y.iter().map(|&v| u64::from(v)).sum();
        assert_eq!(positives, reference[name]["positives"].as_u64().unwrap(), "{name}: same label matrix");
        sets.push((name.into(), raw.train.y.clone(), raw.train.n, raw.label_names.len()));
    }
    eprintln!(
        "{:<10} {:>6} {:>6} | labels without validation positives (all / with >= 10 positives), 20 seeds | mean |dev| | val rows / seed",
        "set", "rows", "labels"
    );
    eprintln!(
        "{:<10} {:>6} {:>6} | {:>11} {:>11} {:>11} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
        "", "", "", "random", "iterative", "iterstrat", "random", "iter", "ref", "random", "iter", "ref"
    );
    for (name, y, n, l) in &sets {
        let (it, rnd) = ours(y, *n, *l, fraction);
        let rf = reference_of(&reference[name.as_str()]);
        eprintln!(
            "{name:<10} {n:>6} {l:>6} | {:>5} / {:<3} {:>5} / {:<3} {:>5} / {:<3} | {:>6.3} {:>6.3} {:>6.3} | {:>6} {:>6} {:>6}",
            rnd.no_val,
            rnd.no_val_eligible,
            it.no_val,
            it.no_val_eligible,
            rf.no_val,
            rf.no_val_eligible,
            rnd.mean_abs_dev,
            it.mean_abs_dev,
            rf.mean_abs_dev,
            rnd.val_rows / SEEDS as usize,
            it.val_rows / SEEDS as usize,
            rf.val_rows / SEEDS as usize
        );
        assert!(it.no_val_eligible <= rf.no_val_eligible, "{name}: {it:?} against the reference's {rf:?}");
        assert!(it.mean_abs_dev <= 1.25 * rf.mean_abs_dev + 0.05, "{name}: {it:?} against the reference's {rf:?}");
        // Label-driven placement overshoots on dense label sets (delicious: ~19 labels a
        // row); the reference does too. Same size as the reference's within 3%.
        let (got, want) = (it.val_rows as f64, rf.val_rows as f64);
        assert!(
            (got - want).abs() <= 0.03 * want + 2.0 * SEEDS as f64,
            "{name}: {got} validation rows, reference {want}"
        );
        assert!(it.no_val <= rnd.no_val, "{name}: iterative {it:?}, random {rnd:?}");
        assert!(it.mean_abs_dev < rnd.mean_abs_dev, "{name}: iterative {it:?}, random {rnd:?}");
    }
}

/// A dataset configured with `split: iterative` trains on the stratified split: a
/// delicious-sized tail of labels all reach validation.
#[test]
fn a_trial_with_split_iterative_gets_the_stratified_rows() {
    let cfg = DatasetConfig { split: SplitMethod::Iterative, ..Default::default() };
    let raw = data::read(&cfg).unwrap();
    let (l, split) = (raw.label_names.len(), data::split(&raw, &SplitSettings::of(&cfg)).unwrap());
    let (_, val) = SplitSettings::of(&cfg).rows(&raw.train, l);
    assert_eq!(split.val.n, val.len());
    let rows = |s: &data::Split| -> Vec<Vec<u8>> { s.y.chunks(l).map(<[u8]>::to_vec).collect() };
    let want: Vec<Vec<u8>> = val.iter().map(|&r| raw.train.y[r * l..(r + 1) * l].to_vec()).collect();
    assert_eq!(rows(&split.val), want, "the validation rows are the stratified ones");
    let random = data::split(&raw, &SplitSettings::random(cfg.val_fraction, cfg.split_seed)).unwrap();
    let missing = |s: &data::Split| (0..l).filter(|&j| s.y.chunks(l).all(|r| r[j] == 0)).count();
    eprintln!(
        "synthetic: labels without validation positives: random {}, iterative {}",
        missing(&random.val),
        missing(&split.val)
    );
    assert!(missing(&split.val) < missing(&random.val));
}

/// Cross-validation folds: every training row validates in exactly one fold, the folds
/// are about the same size, stratified (every label with at least k positives has some in
/// every fold on bibtex, where random folds leave many out), and the same for the same seed.
#[test]
fn cv_folds_partition_train_and_are_stratified() {
    if sweep_testenv::mulan_dir("bibtex").is_none() {
        return;
    }
    let cfg = DatasetConfig::mulan("bibtex");
    let raw = data::read(&cfg).unwrap();
    let (n, l, k) = (raw.train.n, raw.label_names.len(), 5u32);
    let mut seen = vec![0u32; n];
    for fold in 0..k {
        let how = SplitSettings { cv: Some((k, fold)), ..SplitSettings::of(&cfg) };
        let (train, val) = how.rows(&raw.train, l);
        assert_eq!(train.len() + val.len(), n);
        assert!((val.len() as f64 - n as f64 / 5.0).abs() < 0.05 * n as f64, "fold {fold}: {} rows", val.len());
        val.iter().for_each(|&r| seen[r] += 1);
        let positives = |rows: &[usize], j: usize| rows.iter().filter(|&&r| raw.train.y[r * l + j] != 0).count();
        let total: Vec<usize> = (0..l).map(|j| positives(&(0..n).collect::<Vec<_>>(), j)).collect();
        let missing = (0..l).filter(|&j| total[j] >= k as usize && positives(&val, j) == 0).count();
        assert_eq!(missing, 0, "fold {fold}: labels with >= {k} positives and none in the fold");
        assert_eq!(how.rows(&raw.train, l), (train, val), "the same folds for the same seed");
        let ds = data::split(&raw, &how).unwrap();
        assert_eq!(
            ds.labels_without_val_positives(),
            (0..l).filter(|&j| total[j] > 0 && positives(&how.rows(&raw.train, l).1, j) == 0).count()
        );
    }
    assert!(seen.iter().all(|&c| c == 1), "every row validates in exactly one fold");
}
