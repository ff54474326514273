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

/// Reads one ARFF file. `labels` fixes the label order (the xml's).
fn read_arff(
    path: &Path,
    labels: &[String],
    header_of: Option<&[String]>,
) -> Result<(Split, Vec<String>, usize), DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError(format!("{}: {e}", path.display())))?;
    let label_index: HashMap<&str, usize> = labels.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut attrs: Vec<String> = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut in_data = false;
    for (i, line) in lines.by_ref() {
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
            in_data = true;
            break;
        } else if !lower.starts_with("@relation") {
            return Err(err_at(path, i + 1, format!("unexpected header line `{}`", truncate(t))));
        }
    }
    if !in_data {
        return Err(DataError(format!("{}: no @data section", path.display())));
    }
    if let Some(expected) = header_of {
        if expected != attrs.as_slice() {
            return Err(DataError(format!("{}: attributes differ from the training file's", path.display())));
        }
    }
    let mut features = 0;
    let mut seen_labels = vec![false; labels.len()];
    let columns: Vec<Column> = attrs
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
    let header = Header { columns, features, names: attrs };
    let (l, d) = (labels.len(), header.features);
    let mut split = Split::default();
    for (i, line) in lines {
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let (mut xrow, mut yrow) = (vec![0f32; d], vec![0u8; l]);
        let mut put = |col: usize, v: &str| -> Result<(), DataError> {
            let c = *header.columns.get(col).ok_or_else(|| {
                err_at(path, i + 1, format!("attribute index {col} is past the {} attributes", header.columns.len()))
            })?;
            let value: f32 = v
                .trim()
                .trim_matches('\'')
                .parse()
                .map_err(|_| err_at(path, i + 1, format!("attribute {col}: `{}` is not a number", truncate(v))))?;
            if !value.is_finite() {
                return Err(err_at(path, i + 1, format!("attribute {col}: {value} is not finite")));
            }
            match c {
                Column::Feature(f) => xrow[f] = value,
                Column::Label(j) => yrow[j] = u8::from(value != 0.0),
            }
            Ok(())
        };
        if let Some(body) = t.strip_prefix('{') {
            let body = body.strip_suffix('}').ok_or_else(|| err_at(path, i + 1, "sparse row without closing `}`"))?;
            for pair in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (idx, v) = pair.split_once(char::is_whitespace).ok_or_else(|| {
                    err_at(path, i + 1, format!("sparse entry `{}` is not `index value`", truncate(pair)))
                })?;
                let col: usize = idx
                    .parse()
                    .map_err(|_| err_at(path, i + 1, format!("sparse index `{}` is not a number", truncate(idx))))?;
                put(col, v)?;
            }
        } else {
            let values: Vec<&str> = t.split(',').collect();
            if values.len() != header.columns.len() {
                return Err(err_at(
                    path,
                    i + 1,
                    format!("{} values, the header declares {} attributes", values.len(), header.columns.len()),
                ));
            }
            for (col, v) in values.iter().enumerate() {
                put(col, v)?;
            }
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

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Reads a MULAN train/test pair with its label file.
pub fn read_mulan(train: &Path, test: &Path, xml: &Path) -> Result<RawData, DataError> {
    let labels = read_label_xml(xml)?;
    let (train_split, attrs, d) = read_arff(train, &labels, None)?;
    let (test_split, _, _) = read_arff(test, &labels, Some(&attrs))?;
    let dense =
        !std::fs::read_to_string(train).map(|t| t.lines().any(|l| l.trim_start().starts_with('{'))).unwrap_or(false);
    let name = xml.file_stem().and_then(|s| s.to_str()).unwrap_or("mulan").to_string();
    Ok(RawData { name, features: d, label_names: labels, train: train_split, test: test_split, dense })
}
