//! Pretrained encoders: the forward pass equals Hugging Face `transformers`' (BERT,
//! RoBERTa, XLM-R, DistilBERT; 1e-4) and the token ids equal the Python `tokenizers`'
//! on texts with Unicode, empty and long ones (`reference/make_encoders.py` saves tiny
//! random models in Hugging Face's format; nothing is downloaded); bad model
//! directories are one line naming file and tensor; and the frozen tier's trials train
//! heads on pooled embeddings, fused exactly as alone.

use std::path::{Path, PathBuf};

use sweep_file::{
    DataSource, DatasetConfig, EncoderFeatures, ModelKind, Pooling, TextData, TextFormat, TrialConfig, Truncation,
};
use sweep_trainer::data::{self, Features};
use sweep_trainer::encoder::{pool, Embedder, Encoder, TextTokenizer};
use sweep_trainer::train::{self, Control};
use tch::{Device, Kind, Tensor};

const ARCHS: [&str; 4] = ["bert", "roberta", "xlm-roberta", "distilbert"];

/// The tiny models and `transformers`' outputs, made once per test process.
fn reference() -> Option<&'static (PathBuf, serde_json::Value)> {
    static MADE: std::sync::OnceLock<Option<(PathBuf, serde_json::Value)>> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let python = sweep_testenv::torch_python()?;
        let has = std::process::Command::new(&python).args(["-c", "import transformers, tokenizers"]).status();
        if !has.is_ok_and(|s| s.success()) {
            return sweep_testenv::skip(format!("{python} has no transformers (scripts/setup.sh installs it)"));
        }
        let dir = std::env::temp_dir().join(format!("sweep-encoders-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/make_encoders.py");
        let out = std::process::Command::new(python).arg(script).arg(&dir).output().unwrap();
        assert!(out.status.success(), "make_encoders.py: {}", String::from_utf8_lossy(&out.stderr));
        let json = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        Some((dir, json))
    })
    .as_ref()
}

fn settings(max_length: u32, pooling: Pooling) -> EncoderFeatures {
    EncoderFeatures { path: None, pooling, max_length, truncation: Truncation::Head, batch_size: 5 }
}

#[test]
fn forward_and_token_ids_equal_transformers() {
    let Some((dir, r)) = reference() else { return };
    let texts: Vec<String> = serde_json::from_value(r["texts"].clone()).unwrap();
    let max = r["max_length"].as_u64().unwrap() as usize;
    for arch in ARCHS {
        let m = &r["models"][arch];
        let want_ids: Vec<Vec<u32>> = serde_json::from_value(m["ids"].clone()).unwrap();
        let enc = Encoder::load(&dir.join(arch), Device::Cpu).unwrap();
        let tok = TextTokenizer::load(&dir.join(arch).join("tokenizer.json"), enc.vocab()).unwrap();
        for (text, want) in texts.iter().zip(&want_ids) {
            assert_eq!(&tok.encode(text, max, Truncation::Head).unwrap(), want, "{arch}: ids of {text:?}");
        }
        // The padded batch as transformers ran it.
        let width = want_ids.iter().map(Vec::len).max().unwrap();
        let pad = enc.config.pad_token_id;
        let ids: Vec<i64> = want_ids
            .iter()
            .flat_map(|r| r.iter().map(|&t| t as i64).chain(std::iter::repeat_n(pad, width - r.len())))
            .collect();
        let mask: Vec<i64> = want_ids.iter().flat_map(|r| (0..width).map(|k| i64::from(k < r.len()))).collect();
        let shape = [want_ids.len() as i64, width as i64];
        let (ids, mask) = (Tensor::from_slice(&ids).view(shape), Tensor::from_slice(&mask).view(shape));
        let hidden = tch::no_grad(|| enc.forward(&ids, &mask));
        let want: Vec<f32> = serde_json::from_value(m["hidden"].clone()).unwrap();
        let want = Tensor::from_slice(&want).view(hidden.size().as_slice());
        // Padding's states are whatever each implementation leaves there: only tokens count.
        let keep = mask.unsqueeze(-1).to_kind(Kind::Float);
        let diff = ((&hidden - &want) * &keep).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{arch}: hidden states differ from transformers by {diff}");
        // Pooling from those states: the first token, and the mean over real tokens.
        let mean = pool(&want, &mask, Pooling::Mean);
        let by_hand = (&want * &keep).sum_dim_intlist(1, false, None) / keep.sum_dim_intlist(1, false, None);
        assert!((mean - by_hand).abs().max().double_value(&[]) < 1e-6);
        // The frozen tier's embeddings of the texts: batched by length, in the texts' order.
        let embedder = Embedder::load(&dir.join(arch), &settings(max as u32, Pooling::Cls), Device::Cpu).unwrap();
        let emb = Tensor::from_slice(&embedder.embed(&texts).unwrap()).view([texts.len() as i64, -1]);
        let diff = (emb - want.select(1, 0)).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{arch}: cls embeddings differ from transformers by {diff}");
    }
}

#[test]
fn head_and_tail_truncation_keeps_both_ends_within_max_length() {
    let Some((dir, r)) = reference() else { return };
    let texts: Vec<String> = serde_json::from_value(r["texts"].clone()).unwrap();
    let long = texts.iter().find(|t| t.starts_with("A very long")).unwrap();
    let enc = Encoder::load(&dir.join("bert"), Device::Cpu).unwrap();
    let tok = TextTokenizer::load(&dir.join("bert").join("tokenizer.json"), enc.vocab()).unwrap();
    let all = tok.encode(long, 10_000, Truncation::Head).unwrap();
    let both = tok.encode(long, 22, Truncation::HeadTail).unwrap();
    assert_eq!(both.len(), 22);
    // [CLS] + 5 from the start + 15 from the end + [SEP]
    assert_eq!(both[..6], all[..6]);
    assert_eq!(both[6..], all[all.len() - 16..]);
}

/// A copy of the `from` model directory changed by `edit`; what loading it says.
fn broken(from: &Path, edit: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    for f in sweep_file::ENCODER_FILES {
        std::fs::copy(from.join(f), dir.path().join(f)).unwrap();
    }
    edit(dir.path());
    let e = Embedder::load(dir.path(), &settings(16, Pooling::Cls), Device::Cpu);
    let e = format!("{:#}", e.err().expect("refused"));
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn bad_model_directories_are_one_line_naming_file_and_tensor() {
    let Some((dir, _)) = reference() else { return };
    let bert = dir.join("bert");
    let e = broken(&bert, |d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    assert!(e.contains("no tokenizer.json"), "{e}");
    let e = broken(&bert, |d| {
        let c = std::fs::read_to_string(d.join("config.json")).unwrap().replace("\"bert\"", "\"gpt2\"");
        std::fs::write(d.join("config.json"), c).unwrap();
    });
    assert!(e.contains("config.json: model_type `gpt2` is not supported"), "{e}");
    let e = broken(&bert, |d| {
        let c = std::fs::read_to_string(d.join("config.json"))
            .unwrap()
            .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
        std::fs::write(d.join("config.json"), c).unwrap();
    });
    assert!(e.contains("model.safetensors: missing tensor `bert.encoder.layer.2.attention.self.query.weight`"), "{e}");
    let e = broken(&bert, |d| {
        std::fs::copy(dir.join("roberta/tokenizer.json"), d.join("tokenizer.json")).map(drop).unwrap()
    });
    assert!(e.contains("tokenizer.json: ids up to 399, but the model's embedding table has"), "{e}");
    let e = broken(&bert, |d| std::fs::write(d.join("model.safetensors"), b"not tensors").unwrap());
    assert!(e.contains("model.safetensors: not a safetensors file"), "{e}");
    let e = Embedder::load(&dir.join("roberta"), &settings(25, Pooling::Cls), Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("max_length: 25 is beyond") && e.contains("(24 tokens"), "{e}");
}

/// A text dataset of `rows` under `dir`, with a frozen `arch` encoder as its featurizer.
fn frozen_trial(dir: &Path, encoder: &Path) -> TrialConfig {
    let rows = crate::text::corpus(300, 5);
    crate::text::write(&dir.join("train.tsv"), TextFormat::Tsv, &rows[..220]);
    crate::text::write(&dir.join("test.tsv"), TextFormat::Tsv, &rows[220..]);
    let file = |s: &str| Some(dir.join(s).to_string_lossy().into_owned());
    let dataset = DatasetConfig {
        source: DataSource::Text(TextData { train: file("train.tsv"), test: file("test.tsv"), ..Default::default() }),
        ..Default::default()
    };
    let mut cfg = TrialConfig { dataset, ..Default::default() };
    (cfg.model.kind, cfg.model.freeze, cfg.model.path) =
        (ModelKind::Encoder, true, Some(encoder.to_string_lossy().into()));
    (cfg.model.hidden, cfg.model.pooling, cfg.model.max_length) = (vec![], Pooling::Mean, 24);
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) = (4, 32, 0.01);
    assert_eq!(cfg.resolve(false), vec![]);
    assert_eq!(cfg.check(), vec![]);
    cfg
}

#[test]
fn frozen_encoder_trials_train_heads_fused_exactly_as_alone() {
    let Some((dir, _)) = reference() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let base = frozen_trial(tmp.path(), &dir.join("distilbert"));
    let DataSource::Text(t) = &base.dataset.source else { unreachable!() };
    assert_eq!(t.encoder.as_ref().map(|e| e.pooling), Some(Pooling::Mean), "resolve made the encoder the featurizer");
    let ds = data::load(&base.dataset).unwrap();
    assert_eq!(ds.features, 32, "the encoder's hidden size");
    assert!(matches!(ds.train.x, Features::Dense(_)));
    assert!(ds.columns.encoder.is_some() && ds.columns.text.is_none());
    // Embedded once per machine: a second process's cache reads the same rows back.
    let cache_dir = tmp.path().join("cache");
    let first = data::DatasetCache::with_dir(cache_dir.clone()).get(&base.dataset).unwrap();
    let again = data::DatasetCache::with_dir(cache_dir.clone()).get(&base.dataset).unwrap();
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 1, "one embedded dataset on disk");
    for (a, b) in [(&first.train, &ds.train), (&again.train, &ds.train), (&again.test, &ds.test)] {
        assert_eq!(a.dense(), b.dense());
        assert_eq!(a.y, b.y);
    }
    let mut cfgs = vec![base.clone(), base.clone(), base];
    cfgs[1].loss.focal_gamma = 2.0;
    (cfgs[2].loss.kind, cfgs[2].loss.class_weight.scheme) = (sweep_file::LossKind::Asl, sweep_file::WeightScheme::None);
    assert_eq!(sweep_file::fuse_mismatch(&cfgs), None, "the frozen tier's trials share a stack");
    let controls = [Control::default(), Control::default(), Control::default()];
    let fused = train::train_fused(&ds, &cfgs, Device::Cpu, &mut |_, _| {}, &controls.iter().collect::<Vec<_>>());
    for (k, cfg) in cfgs.iter().enumerate() {
        let alone = train::train_one(&ds, cfg, Device::Cpu, &mut |_| {}, &Control::default()).unwrap();
        let fused = fused[k].as_ref().unwrap();
        assert_eq!(fused.metrics["test.f1_micro"], alone.metrics["test.f1_micro"], "config {k}");
        assert_eq!(fused.metrics["train.loss"], alone.metrics["train.loss"], "config {k}");
        assert!(alone.metrics["test.f1_micro"] > 0.0, "config {k} learned nothing: {:?}", alone.metrics);
    }
}
