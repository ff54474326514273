//! The sweep file format: the seed grid, identity, and every bad-input case with its
//! file, line and field.

use sweep_file::{parse, Limits, Method};

/// The refusal of a file, checked to be one readable message (no run of spaces left by a
/// continued string literal).
fn err(yaml: &str) -> String {
    readable(parse(yaml, "s.yaml", Limits::default()).expect_err("should be refused").to_string())
}

fn readable(e: String) -> String {
    assert!(!e.contains("  "), "a refusal with a run of spaces: {e:?}");
    e
}

#[test]
fn seed_grid_expands_to_nine_resolved_trials() {
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/seed-grid.yaml")).unwrap();
    let spec = parse(&yaml, "seed-grid.yaml", Limits::default()).unwrap();
    let trials = spec.expand().unwrap();
    assert_eq!(trials.len(), 9);
    let caps: Vec<f64> = trials.iter().map(|t| t.config.loss.class_weight.cap).collect();
    assert_eq!(caps, [6.0, 6.0, 6.0, 7.0, 7.0, 7.0, 8.0, 8.0, 8.0]);
    let gammas: Vec<f64> = trials.iter().map(|t| t.config.loss.focal_gamma).collect();
    assert_eq!(gammas, [0.0, 2.0, 3.0, 0.0, 2.0, 3.0, 0.0, 2.0, 3.0]);
    let sweep_file::DataSource::Synthetic(generator) = &trials[0].config.dataset.source else { panic!("synthetic") };
    assert_eq!(generator.labels, 698);
    let hashes: std::collections::HashSet<_> = trials.iter().map(|t| &t.hash).collect();
    assert_eq!(hashes.len(), 9);
    // Same file, same identities.
    let again = parse(&yaml, "seed-grid.yaml", Limits::default()).unwrap().expand().unwrap();
    assert_eq!(again.iter().map(|t| &t.hash).collect::<Vec<_>>(), trials.iter().map(|t| &t.hash).collect::<Vec<_>>());
}

#[test]
fn random_search_is_seeded_and_respects_ranges() {
    let yaml = "name: r\nmethod: random\nrun_cap: 50\nseed: 3\nparameters:\n  train.lr: {min: 0.0001, max: 0.1, distribution: log_uniform}\n  train.batch_size: {min: 32, max: 512, distribution: int_uniform}\n  loss.focal_gamma: {values: [0, 2]}\n";
    let a = parse(yaml, "r.yaml", Limits::default()).unwrap();
    assert_eq!(a.method(), Method::Random);
    let ta = a.expand().unwrap();
    let tb = parse(yaml, "r.yaml", Limits::default()).unwrap().expand().unwrap();
    assert_eq!(ta, tb);
    assert!(ta.len() > 40);
    for t in &ta {
        assert!((1e-4..=0.1).contains(&t.config.train.lr));
        assert!((32..=512).contains(&t.config.train.batch_size));
    }
}

#[test]
fn tpe_starts_with_ten_random_draws_and_builds_proposed_trials() {
    let yaml = "name: t\nmethod: tpe\nrun_cap: 40\nseed: 3\nreplicas: 2\nparameters:\n  train.lr: {min: 0.0001, max: 0.1, distribution: log_uniform}\n  loss.focal_gamma: {values: [0, 2]}\n";
    let spec = parse(yaml, "t.yaml", Limits::default()).unwrap();
    assert_eq!((spec.method(), spec.tpe_startup(), spec.planned_trials()), (Method::Tpe, 10, 80));
    let start = spec.expand().unwrap();
    assert_eq!(start.len(), 20, "10 configurations x 2 replicas");
    // What the coordinator does with a proposal: the replicas of one configuration.
    // Values in the order of `parameters()` (sorted by path): focal_gamma, then lr.
    let proposed = spec.trials_for(vec![serde_json::json!(2), serde_json::json!(0.003)]).unwrap();
    assert_eq!(proposed.len(), 2);
    assert_eq!((proposed[0].config.train.lr, proposed[0].config.loss.focal_gamma), (0.003, 2.0));
    assert_ne!(proposed[0].hash, proposed[1].hash, "replicas differ by seed");
    let bad = spec.trials_for(vec![serde_json::json!(2), serde_json::json!(-1.0)]).unwrap_err();
    assert!(bad.contains("train.lr"), "{bad}");
    assert!(err("name: t\nmethod: tpe\nparameters:\n  train.lr: {min: 0.001, max: 0.1}\n")
        .contains("tpe search needs `run_cap`"));
}

#[test]
fn bad_inputs_name_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        ("name: x\nmodel:\n  hiden: [1]\n", "s.yaml:3"),
        (
            "name: x\nparameters:\n  loss.focal_gamma:\n    values: []\n",
            "s.yaml:4: parameters.loss.focal_gamma: `values` is empty",
        ),
        (
            "name: x\nparameters:\n  loss.focal_gama: {values: [1]}\n",
            "s.yaml:3: parameters.loss.focal_gama: unknown parameter path",
        ),
        ("name: x\nparameters:\n  loss: {values: [1]}\n", "is a section"),
        (
            "name: x\nmethod: random\nrun_cap: 3\nparameters:\n  train.lr:\n    min: 0.5\n    max: 0.1\n",
            "s.yaml:6: parameters.train.lr: min (0.5) > max (0.1)",
        ),
        ("name: x\nparameters:\n  train.lr: {values: [.nan]}\n", "not a finite number"),
        ("name: x\ntrain:\n  lr: .inf\n", "s.yaml:3: train.lr: inf is not a finite number"),
        ("name: x\nparameters:\n  train.lr: {min: 0.1, max: 1}\n", "a grid needs `values`"),
        ("name: x\nmethod: random\nparameters:\n  train.lr: {min: 0.1, max: 1}\n", "needs `run_cap`"),
        ("name: x\nparameters:\n  train.epochs: {values: [abc]}\n", "parameters.train.epochs: value \"abc\""),
        ("name: x\nmetric: {name: test.f1_micro}\n", "must be a validation metric"),
        ("name: x\nparameters:\n  train.epochs: {values: [1e400]}\n", "s.yaml:3"),
        ("name: 'a b'\n", "s.yaml:1: name"),
        ("name: x\nloss:\n  class_weight: {cap: 0.5}\n", "loss.class_weight.cap: 0.5 is out of range"),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(e.contains(want), "for {yaml:?}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn grid_over_the_cap_is_refused_before_expansion() {
    let v = format!("{:?}", (0..1000).collect::<Vec<_>>());
    let yaml = format!("name: x\nparameters:\n  train.seed: {{values: {v}}}\n  dataset.split_seed: {{values: {v}}}\n");
    let e = err(&yaml);
    assert!(e.contains("1000000 trials, over the cap of 100000"), "{e}");
    // A configurable cap.
    let small = "name: x\nparameters:\n  train.seed: {values: [1, 2, 3]}\n";
    assert!(parse(small, "s.yaml", Limits { max_trials: 2 }).is_err());
    assert!(parse(small, "s.yaml", Limits { max_trials: 3 }).is_ok());
}

#[test]
fn hostile_files_fail_cleanly() {
    let deep = format!("name: x\ndataset: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse(&deep, "deep.yaml", Limits::default()).is_err());
    assert!(parse("name: x\ntrain: {epochs: 99999999999999999999}\n", "big.yaml", Limits::default()).is_err());
    assert!(parse("", "empty.yaml", Limits::default()).is_err());
    assert!(parse("- just\n- a list\n", "list.yaml", Limits::default()).is_err());
}

/// Parsing validates each field and each value alone and never expands; a combination
/// that only fails together is found by the one expansion (`parse_and_expand`), with the
/// file and the trial named.
#[test]
fn parse_checks_fields_and_expansion_checks_combinations() {
    let yaml = "name: x\nparameters:\n  loss.kind: {values: [bce, asl]}\n  loss.focal_gamma: {values: [0, 2]}\n";
    let spec = parse(yaml, "c.yaml", Limits::default()).expect("each value alone is valid");
    assert_eq!(spec.parameters().len(), 2);
    let e = sweep_file::parse_and_expand(yaml, "c.yaml", Limits::default()).expect_err("asl with focal_gamma 2");
    let e = readable(e.to_string());
    assert!(
        e.starts_with("c.yaml: trial {\"loss.focal_gamma\":2,\"loss.kind\":\"asl\"}: loss.focal_gamma: only"),
        "{e}"
    );
    // Switching the dataset kind leaves the generator's fields at their defaults, which
    // say nothing to a MULAN dataset; that cell has no dataset named, found at expansion.
    let yaml = "name: x\nparameters:\n  dataset.kind: {values: [synthetic, mulan]}\n";
    parse(yaml, "c.yaml", Limits::default()).expect("each value alone is valid");
    let e = sweep_file::parse_and_expand(yaml, "c.yaml", Limits::default()).expect_err("one cell has no dataset");
    let e = readable(e.to_string());
    assert!(e.starts_with("c.yaml: trial {\"dataset.kind\":\"mulan\"}: dataset.name: a mulan dataset needs"), "{e}");
    // A generator setting that does say something is refused for another kind.
    let e = err("name: x\ndataset: {kind: mulan, name: enron, labels: 698, features: 300}\n");
    assert!(e.contains("s.yaml:2") && e.contains("unknown field `features` for a mulan dataset"), "{e}");
}

/// A sweep stored by an earlier version keeps its cells' identities: the loss fields
/// added since (kind, asl, db) do not enter the hash at their defaults. These hashes
/// were printed by `sweep validate examples/seed-grid.yaml -o json` before they existed.
#[test]
fn seed_grid_identities_are_unchanged_by_later_fields() {
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/seed-grid.yaml")).unwrap();
    let trials = parse(&yaml, "seed-grid.yaml", Limits::default()).unwrap().expand().unwrap();
    assert_eq!(trials[0].hash, "20b4807fd8054cbacc91bd3b37c45c35e9394daf02ac119966de45d8ec27e309");
    assert_eq!(trials[1].hash, "af5528d4b9bc752d9dc238a8d593ea4ec495b37919ca398427802e5e85b6f5ec");
    // Checkpointing changes no result: the same cell.
    let mut ck = trials[0].config.clone();
    ck.train.checkpoint_every = 2;
    assert_eq!(sweep_file::config_hash(&ck), trials[0].hash);
    // A non-default loss is a different cell.
    let mut asl = trials[0].config.clone();
    asl.loss.kind = sweep_file::LossKind::Asl;
    assert_ne!(sweep_file::config_hash(&asl), trials[0].hash);
}

#[test]
fn loss_kinds_refuse_what_they_do_not_use() {
    let cases: &[(&str, &str)] = &[
        (
            "name: x\nloss: {kind: db, class_weight: {scheme: neg_pos}}\n",
            "s.yaml:2: loss.class_weight.scheme: loss.kind db re-balances every label with its own weighting; a class-weight scheme would weight positives twice",
        ),
        ("name: x\nloss: {kind: asl, focal_gamma: 2}\n", "loss.focal_gamma: only for loss.kind bce; loss.kind asl"),
        (
            "name: x\nloss: {kind: db, focal_alpha: 0.25, class_weight: {scheme: none}}\n",
            "loss.focal_alpha: only for loss.kind bce, not db",
        ),
        ("name: x\nloss:\n  kind: asl\n  asl: {clip: 1.5}\n", "loss.asl.clip: 1.5 is out of range"),
        ("name: x\nloss:\n  kind: asl\n  asl: {gama_neg: 2}\n", "s.yaml:4"),
        ("name: x\nloss: {kind: focal}\n", "unknown variant `focal`"),
        (
            "name: x\nloss: {class_weight: {scheme: none}}\nparameters:\n  loss.kind: {values: [bce, db]}\n  loss.focal_gamma: {values: [0, 2]}\n",
            "loss.focal_gamma: only for loss.kind bce; loss.kind db",
        ),
    ];
    for (yaml, want) in cases {
        let e = match sweep_file::parse_and_expand(yaml, "s.yaml", Limits::default()) {
            Ok(_) => panic!("should be refused: {yaml}"),
            Err(e) => readable(e.to_string()),
        };
        assert!(e.contains(want), "for {yaml:?}\n got: {e}\nwant: {want}");
    }
    // What the kinds do accept: ASL with class weights, DB without, each swept.
    let ok = "name: x\nloss: {kind: asl}\nparameters:\n  loss.asl.gamma_neg: {values: [2, 4]}\n  loss.class_weight.cap: {values: [1, 5]}\n";
    assert_eq!(sweep_file::parse_and_expand(ok, "s.yaml", Limits::default()).unwrap().1.len(), 4);
    let ok =
        "name: x\nloss: {kind: db, class_weight: {scheme: none}}\nparameters:\n  loss.db.mu: {values: [0.2, 0.9]}\n";
    assert_eq!(sweep_file::parse_and_expand(ok, "s.yaml", Limits::default()).unwrap().1.len(), 2);
}

/// A user who names only the loss gets that loss's defaults: `db` without class weights
/// (it re-weights every label itself), the other kinds `neg_pos`, also when the kind is
/// swept; an explicit scheme is the user's and is checked as given.
#[test]
fn the_class_weight_scheme_defaults_by_loss_kind() {
    use sweep_file::WeightScheme;
    let scheme = |yaml: &str| -> Vec<(sweep_file::LossKind, WeightScheme)> {
        let (_, trials) = sweep_file::parse_and_expand(yaml, "s.yaml", Limits::default()).unwrap();
        trials.iter().map(|t| (t.config.loss.kind, t.config.loss.class_weight.scheme)).collect()
    };
    use sweep_file::LossKind::{Asl, Bce, Db};
    assert_eq!(scheme("name: x\nloss: {kind: db}\n"), [(Db, WeightScheme::None)]);
    assert_eq!(
        scheme("name: x\nparameters:\n  loss.kind: {values: [bce, asl, db]}\n"),
        [(Bce, WeightScheme::NegPos), (Asl, WeightScheme::NegPos), (Db, WeightScheme::None)]
    );
    let e = sweep_file::parse_and_expand(
        "name: x\nloss: {class_weight: {scheme: neg_pos}}\nparameters:\n  loss.kind: {values: [bce, db]}\n",
        "s.yaml",
        Limits::default(),
    )
    .expect_err("an explicit scheme with db");
    assert!(readable(e.to_string()).contains("loss.class_weight.scheme: loss.kind db re-balances"));
}

/// `replicas: N` runs each configuration N times, replica r adding r to both seeds, so
/// replica r of every configuration shares its seeds (what pairs them); the cap counts
/// replicas; seeds cannot also be swept.
#[test]
fn replicas_vary_both_seeds_and_count_against_the_cap() {
    let yaml = "name: r\nreplicas: 3\ntrain: {seed: 10}\nparameters:\n  loss.focal_gamma: {values: [0, 2]}\n";
    let (_, trials) = sweep_file::parse_and_expand(yaml, "r.yaml", Limits::default()).unwrap();
    assert_eq!(trials.len(), 6);
    let seeds: Vec<(f64, u64, u64)> =
        trials.iter().map(|t| (t.config.loss.focal_gamma, t.config.train.seed, t.config.dataset.split_seed)).collect();
    assert_eq!(seeds, [(0.0, 10, 0), (0.0, 11, 1), (0.0, 12, 2), (2.0, 10, 0), (2.0, 11, 1), (2.0, 12, 2)]);
    assert_eq!(trials[4].params["train.seed"], 11);
    assert_eq!(trials[4].params["dataset.split_seed"], 1);
    assert!(parse(yaml, "r.yaml", Limits { max_trials: 5 }).is_err(), "6 trials over a cap of 5");
    let e = err("name: r\nreplicas: 2\nparameters:\n  train.seed: {values: [1, 2]}\n");
    assert!(e.contains("s.yaml:2: replicas: replicas vary train.seed themselves"), "{e}");
    assert!(err("name: r\nreplicas: 0\n").contains("replicas: 0 is out of range"));
}

/// `metrics:` (two or three objectives, the first primary) and `constraints:`; every
/// refusal says file, line and field.
#[test]
fn objectives_and_constraints_parse_and_refuse_clearly() {
    let yaml = "name: m\nmetrics:\n  - {name: val.f1_micro, goal: maximize}\n  - {name: val.f1_macro_tail}\nconstraints: ['val.f1_micro >= 0.45', 'train.loss <= 3']\nparameters:\n  loss.focal_gamma: {values: [0, 2]}\n";
    let spec = parse(yaml, "m.yaml", Limits::default()).unwrap();
    let names: Vec<&str> = spec.objectives().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["val.f1_micro", "val.f1_macro_tail"]);
    assert_eq!(spec.metric().name, "val.f1_micro", "the first objective is the primary");
    assert_eq!(spec.expand().unwrap()[0].config.metric.name, "val.f1_micro", "trials early-stop on the primary");
    let c: Vec<String> = spec.constraints().iter().map(ToString::to_string).collect();
    assert_eq!(c, ["val.f1_micro >= 0.45", "train.loss <= 3"]);
    let metrics = |f1: f64| std::collections::BTreeMap::from([("val.f1_micro", f1), ("train.loss", 1.0)]);
    let (good, bad) = (metrics(0.5), metrics(0.4));
    assert!(spec.feasible(|k: &str| good.get(k).copied()) && !spec.feasible(|k: &str| bad.get(k).copied()));
    // A tail objective alone.
    let tail = parse("name: t\nmetric: {name: val.f1_macro_tail_tuned}\n", "t.yaml", Limits::default()).unwrap();
    assert_eq!(tail.objectives().len(), 1);

    let cases: &[(&str, &str)] = &[
        (
            "name: x\nmetric: {name: val.f1_micro}\nmetrics: [{name: val.f1_macro}, {name: val.f1_micro}]\n",
            "s.yaml:3: metrics: give `metric` (one objective) or `metrics` (several), not both",
        ),
        ("name: x\nmetrics: [{name: val.f1_macro}]\n", "s.yaml:2: metrics: 1 objectives: `metrics` takes two or three"),
        ("name: x\nmetrics: [{name: val.f1_macro}, {name: val.f1_macro}]\n", "an objective is named twice"),
        ("name: x\nmetrics: [{name: val.f1_macro}, {name: test.f1_micro}]\n", "s.yaml:2: metrics[1].name: `test.f1_micro`"),
        (
            "name: x\nmethod: tpe\nrun_cap: 5\nmetrics: [{name: val.f1_macro}, {name: val.f1_micro}]\nparameters:\n  train.lr: {min: 0.001, max: 0.1}\n",
            "s.yaml:2: method: tpe optimises one objective",
        ),
        ("name: x\nconstraints: ['val.f1_micro > 0.4']\n", "s.yaml:2: constraints[0]: `val.f1_micro > 0.4`: write"),
        ("name: x\nconstraints:\n  - val.f1_micro >= 0.4\n  - val.f1_micro >= lots\n", "constraints[1]: `val.f1_micro >= lots`: `lots` is not a number"),
        ("name: x\nconstraints: ['test.f1_micro >= 0.4']\n", "a constraint must be a validation metric"),
        ("name: x\ndataset: {kind: mulan, name: bibtex, split: stratified}\n", "split: unknown split \"stratified\" (expected random or iterative)"),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(e.contains(want), "for {yaml:?}\n got: {e}\nwant: {want}");
    }
}

/// `dataset.split: iterative` is a new cell; a file without `split` keeps the identities
/// it had (the seed grid's recorded hashes are checked above); the split is sweepable.
#[test]
fn the_split_method_is_part_of_identity_only_when_iterative() {
    let base = "name: s\ndataset: {kind: mulan, name: bibtex}\n";
    let random = parse(base, "s.yaml", Limits::default()).unwrap().expand().unwrap();
    let explicit = parse(&base.replace("bibtex}", "bibtex, split: random}"), "s.yaml", Limits::default()).unwrap();
    assert_eq!(explicit.expand().unwrap()[0].hash, random[0].hash);
    let iterative = parse(&base.replace("bibtex}", "bibtex, split: iterative}"), "s.yaml", Limits::default()).unwrap();
    let it = iterative.expand().unwrap();
    assert_eq!(it[0].config.dataset.split, sweep_file::SplitMethod::Iterative);
    assert_ne!(it[0].hash, random[0].hash);
    let swept = format!("{base}parameters:\n  dataset.split: {{values: [random, iterative]}}\n");
    let both = parse(&swept, "s.yaml", Limits::default()).unwrap().expand().unwrap();
    assert_eq!(both.iter().map(|t| t.hash.clone()).collect::<Vec<_>>(), [random[0].hash.clone(), it[0].hash.clone()]);
}

/// `dataset.cv: {folds: k}`: each replica of each configuration is k trials, one per
/// fold (in the params, so they group as one configuration); bad settings refused.
#[test]
fn cross_validation_makes_one_trial_per_fold() {
    let yaml = "name: cv\nreplicas: 2\ndataset: {kind: mulan, name: bibtex, cv: {folds: 5}}\nparameters:\n  loss.focal_gamma: {values: [0, 2]}\n";
    let spec = parse(yaml, "cv.yaml", Limits::default()).unwrap();
    assert_eq!(spec.planned_trials(), 20);
    let trials = spec.expand().unwrap();
    assert_eq!(trials.len(), 20, "2 configurations x 2 replicas x 5 folds");
    let folds: Vec<u64> = trials[..5].iter().map(|t| t.params["dataset.fold"].as_u64().unwrap()).collect();
    assert_eq!(folds, [0, 1, 2, 3, 4]);
    assert!(trials
        .iter()
        .all(|t| t.config.dataset.cv_folds == 5 && t.config.dataset.fold as u64 == t.params["dataset.fold"]));
    let hashes: std::collections::HashSet<&String> = trials.iter().map(|t| &t.hash).collect();
    assert_eq!(hashes.len(), 20);
    // Without cv nothing about folds enters the config or its identity.
    let plain = parse("name: p\ndataset: {kind: mulan, name: bibtex}\n", "p.yaml", Limits::default()).unwrap();
    let v = serde_json::to_value(&plain.expand().unwrap()[0].config).unwrap();
    assert!(v["dataset"].get("cv").is_none() && v["dataset"].get("fold").is_none(), "{v}");
    let cases: &[(&str, &str)] = &[
        ("name: x\ndataset: {kind: mulan, name: bibtex, cv: {folds: 1}}\n", "s.yaml:2: dataset.cv.folds: 1 is out of range: must be in [2, 20]"),
        ("name: x\ndataset: {kind: mulan, name: bibtex, cv: {folds: 21}}\n", "must be in [2, 20]"),
        ("name: x\ndataset: {kind: mulan, name: bibtex, cv: 5}\n", "cv: invalid type"),
        ("name: x\ndataset: {kind: mulan, name: bibtex, fold: 2}\n", "dataset.fold: folds come with `cv: {folds: k}`"),
        (
            "name: x\ndataset: {kind: mulan, name: bibtex, cv: {folds: 3}}\nparameters:\n  dataset.fold: {values: [0, 1]}\n",
            "s.yaml:4: parameters.dataset.fold: `dataset.fold` is not swept",
        ),
        (
            "name: x\ndataset: {kind: text, train: a.tsv, val: b.tsv, test: c.tsv, text: t, labels: l, cv: {folds: 3}}\n",
            "dataset.cv: the data has its own validation file",
        ),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(e.contains(want), "for {yaml:?}\n got: {e}\nwant: {want}");
    }
}

/// `dataset.cv: {folds: k, refit: true}` (the deliverable of a cross-validated
/// configuration): one trial per configuration and replica that trains the folds itself;
/// its identity differs from the fold trials', it never fuses with another trial, and
/// what it cannot be is refused.
#[test]
fn a_refit_is_one_trial_that_trains_its_folds_itself() {
    let yaml = "name: r\nreplicas: 2\ndataset: {kind: mulan, name: bibtex, cv: {folds: 5, refit: true}}\nparameters:\n  loss.focal_gamma: {values: [0, 2]}\n";
    let spec = parse(yaml, "r.yaml", Limits::default()).unwrap();
    assert_eq!(spec.planned_trials(), 4);
    let trials = spec.expand().unwrap();
    assert_eq!(trials.len(), 4, "2 configurations x 2 replicas, no trial per fold");
    assert!(trials.iter().all(|t| t.config.dataset.cv_refit && t.config.dataset.cv_folds == 5));
    assert!(trials.iter().all(|t| !t.params.contains_key("dataset.fold")));
    let v = serde_json::to_value(&trials[0].config).unwrap();
    assert_eq!(v["dataset"]["cv"], serde_json::json!({"folds": 5, "refit": true}));
    assert!(v["dataset"].get("fold").is_none(), "{v}");
    let back: sweep_file::TrialConfig = serde_json::from_value(v).unwrap();
    assert_eq!(back, trials[0].config, "a refit config reads back as itself");
    let folds = parse(&yaml.replace(", refit: true", ""), "f.yaml", Limits::default()).unwrap().expand().unwrap();
    assert!(folds.iter().all(|f| trials.iter().all(|t| t.hash != f.hash)));
    // Fold trials of one fold share a fuse key; refit trials never do.
    let key = sweep_file::FuseKey::of;
    assert_eq!(key(&folds[0].config), key(&folds[10].config), "fold 0 of both configurations");
    assert_ne!(key(&trials[0].config), key(&trials[1].config));
    let why = sweep_file::fuse_mismatch(&[folds[0].config.clone(), trials[0].config.clone()]).unwrap();
    assert!(why.contains("a refit trial"), "{why}");
    let cases: &[(&str, &str)] = &[
        (
            "name: x\ndataset: {kind: mulan, name: bibtex, cv: {folds: 3, refit: true}, fold: 1}\n",
            "dataset.fold: a refit trial (`cv: {refit: true}`) trains every fold itself",
        ),
        ("name: x\ndataset: {kind: mulan, name: bibtex, cv: {folds: 3, refit: yes}}\n", "cv: invalid type"),
        ("name: x\ndataset: {kind: mulan, name: bibtex, cv: {refit: true}}\n", "missing field `folds`"),
        (
            "name: x\ndataset: {kind: mulan, name: bibtex, cv: {folds: 3, refit: true}}\nearly_stop: {type: asha, min_epochs: 1}\n",
            "early_stop: a refit trial",
        ),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(e.contains(want), "for {yaml:?}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn a_budget_is_positive_dollars_and_changes_no_trial() {
    let base = "name: x\nparameters:\n  loss.focal_gamma: {values: [0, 2]}\n";
    let with = format!("{base}budget:\n  max_cost_usd: 12.5\n");
    let spec = parse(&with, "s.yaml", Limits::default()).unwrap();
    assert_eq!(spec.budget(), Some(sweep_file::Budget { max_cost_usd: 12.5 }));
    assert_eq!(parse(base, "s.yaml", Limits::default()).unwrap().budget(), None);
    // What a sweep may spend is not part of any trial's identity.
    let hashes = |y: &str| -> Vec<String> {
        parse(y, "s.yaml", Limits::default()).unwrap().expand().unwrap().into_iter().map(|t| t.hash).collect()
    };
    assert_eq!(hashes(&with), hashes(base));
    for (tail, want) in [
        ("budget:\n  max_cost_usd: -3\n", "s.yaml:5: budget.max_cost_usd: -3 is out of range"),
        ("budget:\n  max_cost_usd: 0\n", "s.yaml:5: budget.max_cost_usd: 0 is out of range"),
        ("budget:\n  max_cost_usd: .inf\n", "budget.max_cost_usd: inf is out of range"),
        ("budget:\n  max_cost_usd: ten\n", "s.yaml:5"),
        ("budget:\n  max_cost: 10\n", "unknown field `max_cost`"),
    ] {
        let e = err(&format!("{base}{tail}"));
        assert!(e.contains(want), "for {tail:?}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn a_frozen_encoder_is_the_text_datasets_featurizer_and_bad_ones_say_where() {
    let yaml = "name: e\ndataset: {kind: text, train: t/train.tsv, test: t/test.tsv}\n\
        model: {kind: encoder, path: models/bert, freeze: true, pooling: mean, max_length: 256, hidden: []}\n\
        parameters:\n  loss.focal_gamma: {values: [0, 2, 3]}\n";
    let trials = parse(yaml, "e.yaml", Limits::default()).unwrap().expand().unwrap();
    assert_eq!(trials.len(), 3);
    for t in &trials {
        let sweep_file::DataSource::Text(d) = &t.config.dataset.source else { panic!("text") };
        let e = d.encoder.as_ref().expect("the encoder is the featurizer");
        assert_eq!((e.path.as_deref(), e.pooling, e.max_length), (Some("models/bert"), sweep_file::Pooling::Mean, 256));
        assert_eq!(sweep_file::data_files(&t.config.dataset).last().unwrap(), &("encoder", "models/bert".to_string()));
    }
    let keys: std::collections::HashSet<_> = trials.iter().map(|t| sweep_file::FuseKey::of(&t.config)).collect();
    assert_eq!(keys.len(), 1, "the frozen tier's trials share one stack");
    // Bound to its uploaded archive, the path is gone and the hash is the identity.
    let mut bound = trials.clone();
    let uploaded = [("t/train.tsv", "a"), ("t/test.tsv", "b"), ("models/bert", "c")]
        .map(|(p, h)| (p.to_string(), h.repeat(64)))
        .into_iter()
        .collect();
    sweep_file::bind_data(&mut bound, &uploaded).unwrap();
    assert_eq!(bound[0].config.dataset.blobs["encoder"], "c".repeat(64));
    assert!(sweep_file::data_files(&bound[0].config.dataset).is_empty());

    let e = err("name: e\ndataset: {kind: mulan, name: yeast}\nmodel: {kind: encoder, path: m, freeze: true}\n");
    assert!(e.contains("s.yaml:3: model.kind: an encoder reads raw text: dataset.kind is mulan, not text"), "{e}");
    let text = "name: e\ndataset: {kind: text, train: a.tsv, test: b.tsv}\n";
    let e = err(&format!("{text}model: {{kind: encoder, freeze: true}}\n"));
    assert!(e.contains("s.yaml:3: model.path: an encoder needs `path`"), "{e}");
    let e = err(&format!("{text}model: {{kind: encoder, path: m}}\n"));
    assert!(e.contains("model.freeze: fine-tuning an encoder (freeze: false) is not built yet"), "{e}");
    let e = err(&format!("{text}model: {{path: m}}\n"));
    assert!(e.contains("model.path: a path is for `kind: encoder`"), "{e}");
    let e = err(&format!("{text}model: {{kind: encoder, path: m, freeze: true, max_length: 1}}\n"));
    assert!(e.contains("model.max_length: 1 is out of range"), "{e}");
    let e = err(&format!("{text}model: {{kind: gpt, path: m}}\n"));
    assert!(e.contains("unknown variant `gpt`"), "{e}");
}
