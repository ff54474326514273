//! MULAN ARFF reader: sparse (`{i v,...}`) and dense rows; which attributes are
//! labels comes from the `.xml` file beside the data.

use std::collections::HashMap;
use std::path::Path;

use super::{err_at, DataError, RawData, Split};

/// Label names in file order from a MULAN `.xml` label file.
pub fn read_label_xml(path: &Path) -> Result<Vec<String>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError(format!("{}: {e}", path.display())))?;
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("<label ") {
            rest = &rest[pos + 7..];
            let start = rest.find("name=\"").ok_or_else(|| err_at(path, i + 1, "<label> without name=\"...\""))? + 6;
            let end = rest[start..].find('"').ok_or_else(|| err_at(path, i + 1, "unterminated label name"))?;
            names.push(unescape_xml(&rest[start..start + end]));
            rest = &rest[start + end..];
        }
    }
    if names.is_empty() {
        return Err(DataError(format!("{}: no <label name=...> entries (empty label set)", path.display())));
    }
    Ok(names)
}

fn unescape_xml(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Where each ARFF attribute goes.
#[derive(Clone, Copy)]
enum Column {
    Feature(usize),
    Label(usize),
}

struct Header {
    columns: Vec<Column>,
    features: usize,
    names: Vec<String>,
}

fn attr_name(rest: &str) -> &str {
    let rest = rest.trim();
    if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
        if let Some(end) = rest[1..].find(q) {
            return &rest[1..1 + end];
        }
    }
    rest.split_whitespace().next().unwrap_or("")
}

/// Reads one ARFF file. `labels` fixes the label order (the xml's); `header_of`, when
/// given, is the training file's attribute list, which this file must repeat.
fn read_arff(
    path: &Path,
    labels: &[String],
    header_of: Option<&[String]>,
) -> Result<(Split, Vec<String>, usize), DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError(format!("{}: {e}", path.display())))?;
    let mut lines = text.lines().enumerate();
    let attrs = read_attributes(path, &mut lines)?;
    if header_of.is_some_and(|expected| expected != attrs.as_slice()) {
        return Err(DataError(format!("{}: attributes differ from the training file's", path.display())));
    }
    let header = Header::new(path, attrs, labels)?;
    let (l, d) = (labels.len(), header.features);
    let mut split = Split::default();
    for (i, line) in lines {
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let (mut xrow, mut yrow) = (vec![0f32; d], vec![0u8; l]);
        let mut row = Row { path, line: i + 1, header: &header, x: &mut xrow, y: &mut yrow };
        match t.strip_prefix('{') {
            Some(body) => row.sparse(body)?,
            None => row.dense(t)?,
        }
        split.x.extend_from_slice(&xrow);
        split.y.extend_from_slice(&yrow);
        split.n += 1;
    }
    if split.n == 0 {
        return Err(DataError(format!("{}: no data rows", path.display())));
    }
    Ok((split, header.names, d))
}

/// The `@attribute` names up to `@data`, which it consumes.
fn read_attributes<'t>(
    path: &Path,
    lines: &mut impl Iterator<Item = (usize, &'t str)>,
) -> Result<Vec<String>, DataError> {
    let mut attrs: Vec<String> = Vec::new();
    for (i, line) in lines {
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("@attribute") {
            let name = attr_name(&t[10..]);
            if name.is_empty() {
                return Err(err_at(path, i + 1, "@attribute without a name"));
            }
            attrs.push(name.to_string());
        } else if lower.starts_with("@data") {
            return Ok(attrs);
        } else if !lower.starts_with("@relation") {
            return Err(err_at(path, i + 1, format!("unexpected header line `{}`", truncate(t))));
        }
    }
    Err(DataError(format!("{}: no @data section", path.display())))
}

impl Header {
    /// Sorts the attributes into features and labels; every label must be an attribute.
    fn new(path: &Path, names: Vec<String>, labels: &[String]) -> Result<Header, DataError> {
        let label_index: HashMap<&str, usize> = labels.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut features = 0;
        let mut seen_labels = vec![false; labels.len()];
        let columns: Vec<Column> = names
            .iter()
            .map(|a| match label_index.get(a.as_str()) {
                Some(&l) => {
                    seen_labels[l] = true;
                    Column::Label(l)
                }
                None => {
                    features += 1;
                    Column::Feature(features - 1)
                }
            })
            .collect();
        let missing = seen_labels.iter().filter(|s| !**s).count();
        if missing > 0 {
            return Err(DataError(format!(
                "{}: label count mismatch: the xml names {} labels, {} of them are not attributes here",
                path.display(),
                labels.len(),
                missing
            )));
        }
        Ok(Header { columns, features, names })
    }
}

/// One data row being read into its feature and label vectors.
struct Row<'a> {
    path: &'a Path,
    line: usize,
    header: &'a Header,
    x: &'a mut [f32],
    y: &'a mut [u8],
}

impl Row<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> DataError {
        err_at(self.path, self.line, msg)
    }

    fn put(&mut self, col: usize, v: &str) -> Result<(), DataError> {
        let n = self.header.columns.len();
        let c = *self
            .header
            .columns
            .get(col)
            .ok_or_else(|| self.err(format!("attribute index {col} is past the {n} attributes")))?;
        let value: f32 = v
            .trim()
            .trim_matches('\'')
            .parse()
            .map_err(|_| self.err(format!("attribute {col}: `{}` is not a number", truncate(v))))?;
        if !value.is_finite() {
            return Err(self.err(format!("attribute {col}: {value} is not finite")));
        }
        match c {
            Column::Feature(f) => self.x[f] = value,
            Column::Label(j) => self.y[j] = u8::from(value != 0.0),
        }
        Ok(())
    }

    /// `{index value, ...}` (the opening brace already taken).
    fn sparse(&mut self, body: &str) -> Result<(), DataError> {
        let body = body.strip_suffix('}').ok_or_else(|| self.err("sparse row without closing `}`"))?;
        for pair in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (idx, v) = pair
                .split_once(char::is_whitespace)
                .ok_or_else(|| self.err(format!("sparse entry `{}` is not `index value`", truncate(pair))))?;
            let col: usize =
                idx.parse().map_err(|_| self.err(format!("sparse index `{}` is not a number", truncate(idx))))?;
            self.put(col, v)?;
        }
        Ok(())
    }

    /// `v,v,...`, one value per attribute.
    fn dense(&mut self, t: &str) -> Result<(), DataError> {
        let values: Vec<&str> = t.split(',').collect();
        let n = self.header.columns.len();
        if values.len() != n {
            return Err(self.err(format!("{} values, the header declares {n} attributes", values.len())));
        }
        for (col, v) in values.iter().enumerate() {
            self.put(col, v)?;
        }
        Ok(())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Reads a MULAN train/test pair with its label file.
/// Rows of one ARFF file with the given label attributes (prediction input).
pub fn read_arff_rows(path: &Path, labels: &[String]) -> Result<Split, DataError> {
    read_arff(path, labels, None).map(|(split, _, _)| split)
}

pub fn read_mulan(train: &Path, test: &Path, xml: &Path) -> Result<RawData, DataError> {
    let labels = read_label_xml(xml)?;
    let (train_split, attrs, d) = read_arff(train, &labels, None)?;
    let (test_split, _, _) = read_arff(test, &labels, Some(&attrs))?;
    let dense =
        !std::fs::read_to_string(train).map(|t| t.lines().any(|l| l.trim_start().starts_with('{'))).unwrap_or(false);
    let name = xml.file_stem().and_then(|s| s.to_str()).unwrap_or("mulan").to_string();
    Ok(RawData { name, features: d, label_names: labels, train: train_split, test: test_split, dense })
}
