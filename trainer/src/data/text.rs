//! Raw text datasets: rows of (text, labels) from TSV or CSV with a header (RFC 4180
//! quoting), JSON lines, Parquet or fastText files; the label set; then features from
//! the featurizer fit on the training rows ([`super::featurize`]).
//!
//! Labels: without `label_names` the label set is every label the training rows hold,
//! sorted; with it, line k of that file names label id k, and a label in the data is a
//! name from the file or an id below its length. Labels that occur only in the test (or
//! validation) rows are reported (a warning and `Dataset::unseen_labels`) and are not
//! part of any F1: the model cannot predict a label it has no column for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use sweep_file::{TextData, TextFormat};

use super::featurize::Fitted;
use super::{DataError, Features, RawData, Split};

/// One row as read: where it is (line, or row number for Parquet), its text (the named
/// fields joined with a space) and its labels as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRow {
    pub line: usize,
    pub text: String,
    pub labels: Vec<String>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError(format!("{}: {e}", path.display()))
}

fn at(path: &Path, line: usize, msg: impl std::fmt::Display) -> DataError {
    super::err_at(path, line, msg)
}

/// What to read from each row.
pub struct Fields<'a> {
    pub text: Vec<&'a str>,
    pub labels: &'a str,
    pub label_sep: &'a str,
    /// False for prediction input: a missing label field means "no labels".
    pub labels_required: bool,
}

impl<'a> Fields<'a> {
    pub fn of(cfg: &'a TextData, labels_required: bool) -> Fields<'a> {
        Fields { text: cfg.text.names(), labels: &cfg.labels, label_sep: &cfg.label_sep, labels_required }
    }

    fn split_labels(&self, s: &str) -> Vec<String> {
        s.split(self.label_sep).map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    }
}

/// Every row of a text file.
pub fn read_rows(path: &Path, format: TextFormat, fields: &Fields) -> Result<Vec<TextRow>, DataError> {
    match format {
        TextFormat::Tsv => read_delimited(path, b'\t', fields),
        TextFormat::Csv => read_delimited(path, b',', fields),
        TextFormat::Jsonl => read_jsonl(path, fields),
        TextFormat::Parquet => super::parquet::read_parquet(path, fields),
        TextFormat::Fasttext => read_fasttext(path),
    }
}

/// Where the text fields and the labels field are among `header`: the labels field may
/// be missing only where labels are not required (prediction input).
pub(super) fn locate(
    path: &Path,
    header: &[String],
    fields: &Fields,
) -> Result<(Vec<usize>, Option<usize>), DataError> {
    let text_cols = columns_of(path, header, &fields.text, "text")?;
    let label_col = match columns_of(path, header, &[fields.labels], "labels") {
        Ok(c) => Some(c[0]),
        Err(_) if !fields.labels_required => None,
        Err(e) => return Err(e),
    };
    Ok((text_cols, label_col))
}

/// The non-blank lines of a file with their numbers, each checked to be UTF-8.
fn utf8_lines(path: &Path, bytes: &[u8]) -> Result<Vec<(usize, String)>, DataError> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let s = std::str::from_utf8(raw).map_err(|_| at(path, i + 1, "invalid UTF-8"))?;
        if !s.trim().is_empty() {
            out.push((i + 1, s.to_string()));
        }
    }
    Ok(out)
}

/// The column index of each name, or an error listing the columns there are.
fn columns_of(path: &Path, header: &[String], names: &[&str], what: &str) -> Result<Vec<usize>, DataError> {
    names
        .iter()
        .map(|n| {
            header
                .iter()
                .position(|h| h == n)
                .ok_or_else(|| io_err(path, format!("no {what} field `{n}`; the fields are: {}", header.join(", "))))
        })
        .collect()
}

fn read_delimited(path: &Path, delimiter: u8, fields: &Fields) -> Result<Vec<TextRow>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_path(path)
        .map_err(|e| io_err(path, e))?;
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line() as usize);
        match e.kind() {
            csv::ErrorKind::Utf8 { .. } => at(path, line, "invalid UTF-8"),
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                at(path, line, format!("{len} fields, the header has {expected_len}"))
            }
            _ => at(path, line, e),
        }
    };
    let header: Vec<String> = reader.headers().map_err(csv_err)?.iter().map(str::to_string).collect();
    let (text_cols, label_col) = locate(path, &header, fields)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let text: Vec<&str> = text_cols.iter().map(|&c| record.get(c).unwrap_or("")).collect();
        let labels = label_col.map(|c| fields.split_labels(record.get(c).unwrap_or(""))).unwrap_or_default();
        rows.push(TextRow { line, text: text.join(" "), labels });
    }
    Ok(rows)
}

fn read_jsonl(path: &Path, fields: &Fields) -> Result<Vec<TextRow>, DataError> {
    use serde_json::Value;
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let mut rows = Vec::new();
    for (line, s) in utf8_lines(path, &bytes)? {
        let v: Value = serde_json::from_str(&s).map_err(|e| at(path, line, format!("not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| at(path, line, "not a JSON object"))?;
        let present = || obj.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut text = Vec::new();
        for f in &fields.text {
            match obj.get(*f) {
                Some(Value::String(s)) => text.push(s.clone()),
                Some(Value::Null) => text.push(String::new()),
                Some(other) => {
                    return Err(at(path, line, format!("field `{f}` is {}, expected a string", kind(other))))
                }
                None => return Err(at(path, line, format!("no text field `{f}`; the fields are: {}", present()))),
            }
        }
        let labels = match obj.get(fields.labels) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(at(
                        path,
                        line,
                        format!("field `{}` holds {}, expected strings or ids", fields.labels, kind(other)),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(Value::String(s)) => fields.split_labels(s),
            Some(Value::Number(n)) => vec![n.to_string()],
            Some(Value::Null) => vec![],
            Some(other) => {
                let msg = format!("field `{}` is {}, expected a list or a string", fields.labels, kind(other));
                return Err(at(path, line, msg));
            }
            None if !fields.labels_required => vec![],
            None => {
                return Err(at(
                    path,
                    line,
                    format!("no labels field `{}`; the fields are: {}", fields.labels, present()),
                ))
            }
        };
        rows.push(TextRow { line, text: text.join(" "), labels });
    }
    Ok(rows)
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// fastText's supervised format: tokens starting `__label__` are labels, the rest text.
fn read_fasttext(path: &Path) -> Result<Vec<TextRow>, DataError> {
    const PREFIX: &str = "__label__";
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let mut rows = Vec::new();
    for (line, s) in utf8_lines(path, &bytes)? {
        let (labels, words): (Vec<&str>, Vec<&str>) = s.split_whitespace().partition(|t| t.starts_with(PREFIX));
        let labels = labels.iter().map(|l| l[PREFIX.len()..].to_string()).filter(|l| !l.is_empty()).collect();
        rows.push(TextRow { line, text: words.join(" "), labels });
    }
    Ok(rows)
}

/// The label set and each label's column, from `label_names` or the training rows.
pub struct Labels {
    pub names: Vec<String>,
    index: HashMap<String, usize>,
    /// From a label file: a label may also be written as its id.
    by_id: bool,
}

impl Labels {
    pub fn from_file(path: &Path) -> Result<Labels, DataError> {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| io_err(path, "invalid UTF-8"))?;
        let names: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
        let names: Vec<String> =
            names.into_iter().rev().skip_while(|n| n.is_empty()).collect::<Vec<_>>().into_iter().rev().collect();
        if let Some(i) = names.iter().position(String::is_empty) {
            return Err(at(path, i + 1, "an empty label name"));
        }
        if names.is_empty() {
            return Err(io_err(path, "no label names (empty file)"));
        }
        let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        Ok(Labels { names, index, by_id: true })
    }

    /// A trained model's labels: by name, and by id when they came from a label file.
    pub fn from_names(names: Vec<String>, by_id: bool) -> Labels {
        let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        Labels { names, index, by_id }
    }

    /// Every label the rows hold, sorted.
    pub fn from_rows(rows: &[TextRow]) -> Labels {
        let set: BTreeSet<&String> = rows.iter().flat_map(|r| &r.labels).collect();
        let names: Vec<String> = set.into_iter().cloned().collect();
        let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        Labels { names, index, by_id: false }
    }

    /// The column of a label as written: a name, or (with a label file) an id.
    fn column(&self, label: &str) -> Result<Option<usize>, String> {
        if let Some(&c) = self.index.get(label) {
            return Ok(Some(c));
        }
        if self.by_id {
            return match label.parse::<usize>() {
                Ok(id) if id < self.names.len() => Ok(Some(id)),
                Ok(id) => Err(format!(
                    "label id {id} is outside label_names ({} names, ids 0 to {})",
                    self.names.len(),
                    self.names.len() - 1
                )),
                Err(_) => Err(format!("label `{label}` is not in label_names")),
            };
        }
        Ok(None)
    }

    /// The rows' 0/1 label matrix; labels without a column are counted in `unseen`. Held
    /// densely, so bounded by the file's size (many rows times many distinct labels).
    pub fn matrix(
        &self,
        path: &Path,
        rows: &[TextRow],
        unseen: &mut BTreeMap<String, usize>,
    ) -> Result<Vec<u8>, DataError> {
        let l = self.names.len();
        super::check_dense(path, None, "rows x labels", (rows.len(), l, 1), super::file_bytes(path))?;
        let mut y = vec![0u8; rows.len() * l];
        for (r, row) in rows.iter().enumerate() {
            for label in &row.labels {
                match self.column(label).map_err(|m| at(path, row.line, m))? {
                    Some(c) => y[r * l + c] = 1,
                    None => *unseen.entry(label.clone()).or_default() += 1,
                }
            }
        }
        Ok(y)
    }
}

/// Reads a text dataset and featurizes it (fit on the training rows).
pub fn read_text(cfg: &TextData, files: TextFiles) -> Result<RawData, DataError> {
    let format = cfg.format.or_else(|| TextFormat::from_path(&files.train.to_string_lossy())).ok_or_else(|| {
        DataError(format!("{}: set dataset.format (tsv, csv, jsonl, parquet or fasttext)", files.train.display()))
    })?;
    let fields = Fields::of(cfg, true);
    let train_rows = read_rows(files.train, format, &fields)?;
    if train_rows.is_empty() {
        return Err(io_err(files.train, "the training split is empty"));
    }
    let val_rows = files.val.map(|p| read_rows(p, format, &fields).map(|r| (p, r))).transpose()?;
    let test_rows = read_rows(files.test, format, &fields)?;
    let labels = match files.label_names {
        Some(p) => Labels::from_file(p)?,
        None => Labels::from_rows(&train_rows),
    };
    if labels.names.is_empty() {
        return Err(io_err(files.train, format!("no labels in field `{}` (empty label set)", cfg.labels)));
    }
    let y_train = labels.matrix(files.train, &train_rows, &mut BTreeMap::new())?;
    let docs = |rows: &[TextRow]| rows.iter().map(|r| r.text.clone()).collect::<Vec<_>>();
    let (columnize, x_train) = Columnize::fit(cfg, files.train, &docs(&train_rows))?;
    let mut unseen = BTreeMap::new();
    let mut split_of = |path: &Path, rows: &[TextRow]| -> Result<Split, DataError> {
        let y = labels.matrix(path, rows, &mut unseen)?;
        Ok(Split { n: rows.len(), x: columnize.transform(&docs(rows))?, y })
    };
    let test = split_of(files.test, &test_rows)?;
    let val = val_rows.map(|(p, rows)| split_of(p, &rows)).transpose()?;
    if !unseen.is_empty() {
        let rows: usize = unseen.values().sum();
        let some: Vec<&String> = unseen.keys().take(5).collect();
        tracing::warn!(labels = unseen.len(), rows, examples = ?some, "labels in test/validation that training never has: reported, not scored");
    }
    let name = files.train.file_stem().and_then(|s| s.to_str()).unwrap_or("text").to_string();
    Ok(RawData {
        name,
        features: columnize.columns(),
        label_names: labels.names,
        train: Split { n: train_rows.len(), x: x_train, y: y_train },
        val,
        test,
        dense: columnize.dense(),
        columns: columnize.into_columns(),
        unseen_labels: unseen,
    })
}

/// How texts become the model's columns: the featurizer fitted on the training texts,
/// or a frozen encoder's pooled embeddings (dense, standardised like numeric features).
enum Columnize {
    Fitted(Fitted),
    Encoder(Box<crate::encoder::Embedder>, sweep_file::EncoderFeatures),
}

impl Columnize {
    /// The columnizer and the training texts' rows.
    fn fit(cfg: &TextData, train: &Path, docs: &[String]) -> Result<(Columnize, Features), DataError> {
        match &cfg.encoder {
            None => {
                let (fitted, x) = Fitted::fit_transform(&cfg.features, docs).map_err(|e| io_err(train, e))?;
                Ok((Columnize::Fitted(fitted), Features::Sparse(x)))
            }
            Some(e) => {
                let dir = e
                    .path
                    .as_deref()
                    .map(super::resolve)
                    .ok_or_else(|| DataError("model.path: the frozen encoder's directory is missing".into()))?;
                let device = crate::encoder::device();
                let embedder =
                    crate::encoder::Embedder::load(&dir, e, device).map_err(|e| DataError(format!("{e:#}")))?;
                let columnize = Columnize::Encoder(Box::new(embedder), e.clone());
                let x = columnize.transform(docs)?;
                Ok((columnize, x))
            }
        }
    }

    fn transform(&self, docs: &[String]) -> Result<Features, DataError> {
        match self {
            Columnize::Fitted(f) => Ok(Features::Sparse(f.transform(docs))),
            Columnize::Encoder(e, _) => Ok(Features::Dense(e.embed(docs).map_err(|e| DataError(format!("{e:#}")))?)),
        }
    }

    fn columns(&self) -> usize {
        match self {
            Columnize::Fitted(f) => f.columns(),
            Columnize::Encoder(e, _) => e.columns(),
        }
    }

    fn dense(&self) -> bool {
        matches!(self, Columnize::Encoder(..))
    }

    fn into_columns(self) -> super::Columns {
        match self {
            Columnize::Fitted(f) => super::Columns { text: Some(f), ..Default::default() },
            Columnize::Encoder(_, e) => super::Columns { encoder: Some(e), ..Default::default() },
        }
    }
}

/// The local files of a text dataset.
pub struct TextFiles<'a> {
    pub train: &'a Path,
    pub val: Option<&'a Path>,
    pub test: &'a Path,
    pub label_names: Option<&'a Path>,
}
