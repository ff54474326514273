//! The `dataset:` section: where a trial's rows come from (one kind each: synthetic,
//! MULAN, XC or text, with only that kind's fields) and how train is split for
//! validation. Written flat in a sweep file (`{kind: mulan, name: bibtex,
//! val_fraction: 0.1}`); in memory the kind's fields are one variant of [`DataSource`],
//! so a config never carries another kind's settings.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};

pub use crate::features::*;
pub use crate::split::SplitMethod;

/// Which reader a dataset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// Deterministic long-tail generator with planted signal.
    Synthetic,
    /// MULAN ARFF files (sparse or dense) with the label names in an `.xml` beside them.
    Mulan,
    /// Extreme-classification sparse text: `l1,l2 f:v f:v` per line.
    Xc,
    /// Raw text and labels (TSV, CSV, JSON lines, Parquet, fastText), featurized by the
    /// worker.
    Text,
}

impl DatasetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::Mulan => "mulan",
            DatasetKind::Xc => "xc",
            DatasetKind::Text => "text",
        }
    }
}

/// A trial's dataset: its source and the validation split.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetConfig {
    pub source: DataSource,
    /// Fraction of the training split carved off, by `split_seed`, for validation (when
    /// the source has no validation split of its own).
    pub val_fraction: f64,
    pub split_seed: u64,
    /// How the validation rows are chosen. Written out (and part of identity) only when
    /// not `random`, so configurations stored before it existed keep their hashes.
    pub split: SplitMethod,
    /// Cross-validation (`cv: {folds: k}`): train is dealt into k stratified folds and
    /// this trial validates on fold `fold`, training on the others; 0: no folds. Written
    /// out only when set.
    pub cv_folds: u32,
    /// Which fold this trial validates on (set by expansion, one trial per fold).
    pub fold: u32,
    /// `cv: {folds: k, refit: true}`: one trial that trains the k folds itself, tunes
    /// the thresholds on their out-of-fold predictions, then trains one model on all of
    /// train for the folds' mean best epoch (the deliverable of a cross-validated
    /// winner). Written out only when set.
    pub cv_refit: bool,
    /// The data files as blobs, by role (`train`, `test`, `xml`, `val`, `label_names`)
    /// -> SHA-256: set when `sweep submit` uploaded them; workers fetch them by hash and
    /// put local paths back before anything reads the config.
    pub blobs: BTreeMap<String, String>,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig {
            source: DataSource::Synthetic(SyntheticData::default()),
            val_fraction: 0.1,
            split_seed: 0,
            split: SplitMethod::Random,
            cv_folds: 0,
            fold: 0,
            cv_refit: false,
            blobs: BTreeMap::new(),
        }
    }
}

/// Where the rows come from, with that kind's settings only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSource {
    Synthetic(SyntheticData),
    Mulan(MulanData),
    Xc(XcData),
    Text(TextData),
}

/// The synthetic long-tail generator's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticData {
    pub labels: u32,
    pub features: u32,
    pub train_samples: u32,
    pub test_samples: u32,
    pub min_positives: u32,
    pub max_positives: u32,
    pub seed: u64,
}

impl Default for SyntheticData {
    fn default() -> Self {
        SyntheticData {
            labels: 698,
            features: 256,
            train_samples: 12_000,
            test_samples: 3_000,
            min_positives: 5,
            max_positives: 1_200,
            seed: 0,
        }
    }
}

/// MULAN ARFF: a dataset name under `$SWEEP_DATA_DIR/mulan/<name>/`, or explicit files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MulanData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// The label file; defaults to `<name>.xml` beside the train file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xml: Option<String>,
}

/// Extreme-classification sparse text files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XcData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
}

/// The file formats text datasets come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// Tab-separated with a header row (RFC 4180 quoting).
    Tsv,
    /// Comma-separated with a header row (RFC 4180 quoting).
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
    /// fastText: `__label__a __label__b text` per line.
    Fasttext,
}

impl TextFormat {
    /// The format a file's extension names, if it names one.
    pub fn from_path(path: &str) -> Option<TextFormat> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "tsv" | "tab" => TextFormat::Tsv,
            "csv" => TextFormat::Csv,
            "jsonl" | "ndjson" | "json" => TextFormat::Jsonl,
            "parquet" | "pq" => TextFormat::Parquet,
            "ft" | "fasttext" => TextFormat::Fasttext,
            _ => return None,
        })
    }
}

/// The field (or fields, joined with a space) holding a row's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TextFields {
    One(String),
    Many(Vec<String>),
}

impl TextFields {
    pub fn names(&self) -> Vec<&str> {
        match self {
            TextFields::One(f) => vec![f.as_str()],
            TextFields::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Raw text with labels, featurized on the worker (fit on the training split only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<String>,
    /// An official validation split; without it `val_fraction` of train is carved off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// The files' format; resolved from the train file's extension when not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<TextFormat>,
    pub text: TextFields,
    /// The field holding a row's labels: a list (JSON lines, Parquet) or a string split
    /// at `label_sep`.
    pub labels: String,
    pub label_sep: String,
    /// A file whose line k names label id k; labels in the data are then ids or names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_names: Option<String>,
    pub features: Featurizer,
    /// A frozen encoder in place of `features` (set from `model: {kind: encoder,
    /// freeze: true}` when the config is resolved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<crate::EncoderFeatures>,
}

impl Default for TextData {
    fn default() -> Self {
        TextData {
            train: None,
            val: None,
            test: None,
            format: None,
            text: TextFields::One("text".into()),
            labels: "labels".into(),
            label_sep: ",".into(),
            label_names: None,
            features: Featurizer::default(),
            encoder: None,
        }
    }
}

impl DatasetConfig {
    pub fn kind(&self) -> DatasetKind {
        match self.source {
            DataSource::Synthetic(_) => DatasetKind::Synthetic,
            DataSource::Mulan(_) => DatasetKind::Mulan,
            DataSource::Xc(_) => DatasetKind::Xc,
            DataSource::Text(_) => DatasetKind::Text,
        }
    }

    /// A MULAN dataset by name (tests and benchmarks).
    pub fn mulan(name: &str) -> DatasetConfig {
        DatasetConfig {
            source: DataSource::Mulan(MulanData { name: Some(name.into()), ..Default::default() }),
            ..Default::default()
        }
    }

    /// Whether a data file of `role` is named, by path or by an uploaded blob.
    pub(crate) fn has(&self, role: &str, path: &Option<String>) -> bool {
        path.is_some() || self.blobs.contains_key(role)
    }

    /// Range checks and the files each kind needs, as (dotted field, problem).
    pub(crate) fn check(&self, bad: &mut Vec<(String, String)>) {
        self.check_split(bad);
        match &self.source {
            DataSource::Synthetic(s) => s.check(bad),
            DataSource::Mulan(m) => {
                if m.name.is_none() && !self.has("train", &m.train) {
                    bad.push(("dataset.name".into(), "a mulan dataset needs `name` or `train`/`test` paths".into()));
                } else if m.name.is_none() && !self.has("test", &m.test) {
                    bad.push(("dataset.test".into(), "a mulan dataset given by path needs `test` too".into()));
                }
                if let Some(name) = &m.name {
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || name.is_empty() {
                        bad.push((
                            "dataset.name".into(),
                            format!("`{name}` is not a dataset name (letters, digits, '_', '-')"),
                        ));
                    }
                }
            }
            DataSource::Xc(x) => {
                if !self.has("train", &x.train) || !self.has("test", &x.test) {
                    bad.push(("dataset.train".into(), "an xc dataset needs `train` and `test` paths".into()));
                }
            }
            DataSource::Text(t) => {
                if !self.has("train", &t.train) || !self.has("test", &t.test) {
                    bad.push(("dataset.train".into(), "a text dataset needs `train` and `test` paths".into()));
                }
                if t.text.names().is_empty() || t.text.names().iter().any(|f| f.is_empty()) {
                    bad.push(("dataset.text".into(), "name the field holding the text (or a list of fields)".into()));
                }
                if t.labels.is_empty() {
                    bad.push(("dataset.labels".into(), "name the field holding the labels".into()));
                }
                if t.label_sep.is_empty() {
                    bad.push(("dataset.label_sep".into(), "must not be empty".into()));
                }
                t.features.check(bad);
            }
        }
    }

    /// Fills in what a dataset leaves to be inferred: a text dataset's format from its
    /// train file's extension. Paths are still as written here (before binding).
    pub(crate) fn resolve(&mut self, bad: &mut Vec<(String, String)>) {
        if let DataSource::Text(t) = &mut self.source {
            if t.format.is_none() {
                match t.train.as_deref().map(|p| (p, TextFormat::from_path(p))) {
                    Some((_, Some(f))) => t.format = Some(f),
                    Some((p, None)) => bad.push((
                        "dataset.format".into(),
                        format!("cannot tell the format of `{p}` from its extension: set format: tsv, csv, jsonl, parquet or fasttext"),
                    )),
                    None => {}
                }
            }
        }
    }

    /// The JSON the trial's identity is computed from. Kinds that existed before the
    /// dataset section was split by kind keep the flat layout their identities were
    /// first computed from (every generator field, unused paths as null), so a sweep
    /// stored by an earlier version adds no duplicate cells when resubmitted.
    pub fn identity_json(&self) -> Value {
        let flat = |name: &Option<String>,
                    train: &Option<String>,
                    test: &Option<String>,
                    xml: &Option<String>,
                    s: &SyntheticData| {
            let mut m = Map::new();
            for (k, v) in [("name", name), ("train", train), ("test", test), ("xml", xml)] {
                m.insert(k.into(), json!(v));
            }
            if let Value::Object(gen) = serde_json::to_value(s).expect("generator settings serialise") {
                m.extend(gen);
            }
            m
        };
        let none = None;
        let mut m = match &self.source {
            DataSource::Synthetic(s) => flat(&none, &none, &none, &none, s),
            DataSource::Mulan(d) => flat(&d.name, &d.train, &d.test, &d.xml, &SyntheticData::default()),
            DataSource::Xc(d) => flat(&none, &d.train, &d.test, &none, &SyntheticData::default()),
            DataSource::Text(_) => return serde_json::to_value(self).expect("dataset serialises"),
        };
        m.insert("kind".into(), json!(self.kind().as_str()));
        self.insert_split(&mut m);
        Value::Object(m)
    }
}

impl SyntheticData {
    fn check(&self, bad: &mut Vec<(String, String)>) {
        if self.labels == 0 || self.labels > 100_000 {
            bad.push(("dataset.labels".into(), format!("{} is out of range: must be in [1, 100000]", self.labels)));
        }
        if self.features == 0 || self.features > 1_000_000 {
            bad.push((
                "dataset.features".into(),
                format!("{} is out of range: must be in [1, 1000000]", self.features),
            ));
        }
        if self.train_samples < 10 || self.test_samples == 0 {
            bad.push(("dataset.train_samples".into(), "need at least 10 training and 1 test sample".into()));
        }
        let rows = u64::from(self.train_samples) + u64::from(self.test_samples);
        if rows * u64::from(self.labels) > 2_000_000_000 {
            bad.push(("dataset.labels".into(), "samples x labels is over 2e9 cells".into()));
        }
        if self.min_positives == 0 || self.min_positives > self.max_positives {
            bad.push((
                "dataset.min_positives".into(),
                format!("need 1 <= min_positives ({}) <= max_positives ({})", self.min_positives, self.max_positives),
            ));
        }
    }
}

/// Keys every kind shares.
const COMMON: [&str; 6] = ["val_fraction", "split_seed", "split", "cv", "fold", "blobs"];

impl Serialize for DatasetConfig {
    /// Flat: `kind`, that kind's fields, then the split settings (and blobs when bound).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = match serde_json::to_value(&self.source).map_err(serde::ser::Error::custom)? {
            Value::Object(m) => m,
            _ => unreachable!("a data source serialises to a map"),
        };
        self.insert_split(&mut m);
        m.serialize(s)
    }
}

impl<'de> Deserialize<'de> for DatasetConfig {
    /// Flat, `kind` defaulting to synthetic; a field another kind uses is refused by name.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut m = Map::<String, Value>::deserialize(d)?;
        let mut out = DatasetConfig::default();
        out.take_split(&mut m).map_err(D::Error::custom)?;
        if let Some(v) = m.remove("blobs") {
            out.blobs = serde_json::from_value(v).map_err(|e| D::Error::custom(format!("blobs: {e}")))?;
        }
        drop_legacy_defaults(&mut m);
        let kind = match m.get("kind") {
            None => {
                m.insert("kind".into(), json!("synthetic"));
                DatasetKind::Synthetic
            }
            Some(k) => serde_json::from_value::<DatasetKind>(k.clone()).map_err(|_| {
                D::Error::custom(format!("kind: unknown dataset kind {k} (expected synthetic, mulan, xc or text)"))
            })?,
        };
        out.source = serde_json::from_value(Value::Object(m)).map_err(|e| {
            let e = e.to_string();
            match e.strip_prefix("unknown field ") {
                Some(rest) => D::Error::custom(
                    format!(
                        "unknown field {} for a {} dataset",
                        rest.split_once(',').map_or(rest, |(f, _)| f),
                        kind.as_str()
                    ) + &format!(" (it takes {}, and {})", fields_of(kind), COMMON.join(", ")),
                ),
                None => D::Error::custom(e),
            }
        })?;
        Ok(out)
    }
}

/// Configs stored before the dataset section was split by kind carry every field of
/// every kind (null paths, the generator's defaults): those values say nothing and are
/// dropped where the kind does not use them. A value that does say something stays, and
/// is refused by name.
fn drop_legacy_defaults(m: &mut Map<String, Value>) {
    let kind = m.get("kind").and_then(Value::as_str).unwrap_or("synthetic").to_string();
    let generator = match serde_json::to_value(SyntheticData::default()) {
        Ok(Value::Object(g)) => g,
        _ => Map::new(),
    };
    let unused_path = |k: &str| match kind.as_str() {
        "synthetic" => ["name", "train", "test", "xml"].contains(&k),
        "xc" => ["name", "xml"].contains(&k),
        _ => false,
    };
    m.retain(|k, v| {
        let default_generator = kind != "synthetic" && generator.get(k) == Some(v);
        let null_path = v.is_null() && unused_path(k);
        !(default_generator || null_path)
    });
}

/// The fields a kind takes, for error messages.
fn fields_of(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Synthetic => "labels, features, train_samples, test_samples, min_positives, max_positives, seed",
        DatasetKind::Mulan => "name, train, test, xml",
        DatasetKind::Xc => "train, test",
        DatasetKind::Text => "train, val, test, format, text, labels, label_sep, label_names, features",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_serialises_only_its_own_fields() {
        let m = DatasetConfig::mulan("enron");
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v, json!({"kind": "mulan", "name": "enron", "val_fraction": 0.1, "split_seed": 0}));
        let back: DatasetConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        let e =
            serde_json::from_value::<DatasetConfig>(json!({"kind": "mulan", "name": "x", "labels": 3})).unwrap_err();
        assert!(e.to_string().starts_with("unknown field `labels` for a mulan dataset (it takes name, train"), "{e}");
        let synthetic: DatasetConfig = serde_json::from_value(json!({"labels": 60})).unwrap();
        assert_eq!(synthetic.kind(), DatasetKind::Synthetic);
    }

    /// `split: iterative` is written out and changes the identity; `random` (the default)
    /// is not written, so configurations from before `split` existed keep theirs.
    #[test]
    fn the_split_method_is_written_only_when_not_random() {
        let random = DatasetConfig::mulan("bibtex");
        let explicit: DatasetConfig =
            serde_json::from_value(json!({"kind": "mulan", "name": "bibtex", "split": "random"})).unwrap();
        assert_eq!(explicit.identity_json(), random.identity_json());
        let iterative: DatasetConfig =
            serde_json::from_value(json!({"kind": "mulan", "name": "bibtex", "split": "iterative"})).unwrap();
        assert_eq!(iterative.split, SplitMethod::Iterative);
        assert_eq!(iterative.identity_json()["split"], "iterative");
        assert_ne!(iterative.identity_json(), random.identity_json());
        assert_eq!(serde_json::to_value(&iterative).unwrap()["split"], "iterative");
        let e = serde_json::from_value::<DatasetConfig>(json!({"kind": "mulan", "name": "x", "split": "stratified"}))
            .unwrap_err();
        assert_eq!(e.to_string(), "split: unknown split \"stratified\" (expected random or iterative)");
    }

    /// What an earlier version stored for a MULAN trial still reads (every generator
    /// field at its default, null paths), and comes out with the same identity.
    #[test]
    fn configs_stored_flat_by_earlier_versions_still_read() {
        let flat = DatasetConfig::mulan("bibtex").identity_json();
        let back: DatasetConfig = serde_json::from_value(flat.clone()).unwrap();
        assert_eq!(back, DatasetConfig::mulan("bibtex"));
        assert_eq!(back.identity_json(), flat);
        let synthetic = DatasetConfig::default().identity_json();
        assert_eq!(serde_json::from_value::<DatasetConfig>(synthetic).unwrap(), DatasetConfig::default());
        let mut odd = flat;
        odd["labels"] = json!(5);
        assert!(serde_json::from_value::<DatasetConfig>(odd).is_err(), "a generator setting that says something");
    }

    /// The identities of MULAN and synthetic datasets are computed from the layout they
    /// had before kinds were split (what these values were printed from).
    #[test]
    fn legacy_kinds_keep_their_flat_identity_layout() {
        let v = DatasetConfig::mulan("bibtex").identity_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "features",
                "kind",
                "labels",
                "max_positives",
                "min_positives",
                "name",
                "seed",
                "split_seed",
                "test",
                "test_samples",
                "train",
                "train_samples",
                "val_fraction",
                "xml"
            ]
        );
        assert_eq!(v["test"], Value::Null);
        assert_eq!(v["labels"], 698);
    }
}
