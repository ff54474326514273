//! MULAN ARFF reader, as Weka writes the format: `%` comments, names and values quoted
//! with `'` or `"` and backslash escapes inside them (`'Swainson\'s Thrush'`), numeric
//! and nominal (`{a,b,c}`) attributes, dense rows and sparse `{index value, ...}` rows
//! (an omitted value is 0, which for a nominal attribute is its first declared value).
//! Which attributes are labels comes from the `.xml` file beside the data.
//!
//! A nominal feature becomes one indicator column per value that occurs in the training
//! rows (in declaration order); a value the training rows never hold sets no column
//! (all zero), and a value its file does not declare is an error naming file, line and
//! attribute. The binary `{0,1}` attribute MULAN writes for bag-of-words features and
//! for labels is read as the number it holds (one column, as its indicator would be).

use std::collections::{BTreeMap, HashMap};
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

/// A line without its `%` comment (a `%` inside quotes is text).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '%') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Splits `s` at `sep` outside quotes; pieces are trimmed, quotes kept.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let (mut out, mut start, mut quote, mut escaped) = (Vec::new(), 0, None, false);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c == sep => {
                out.push(s[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// The first token of `s` (a quoted string with its escapes undone, or a run up to
/// whitespace) and the rest; None when a quote is not closed.
fn first_token(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    let Some(q) = s.chars().next().filter(|c| *c == '\'' || *c == '"') else {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        return Some((s[..end].to_string(), &s[end..]));
    };
    let (mut out, mut escaped) = (String::new(), false);
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            out.push(match c {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            });
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            return Some((out, &s[i + 1..]));
        } else {
            out.push(c);
        }
    }
    None
}

/// A value as written, unquoted.
fn unquote(v: &str) -> Option<String> {
    let (tok, rest) = first_token(v)?;
    rest.trim().is_empty().then_some(tok)
}

/// What an attribute holds.
#[derive(Debug, Clone, PartialEq)]
enum Type {
    Numeric,
    /// The declared values, in order.
    Nominal(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Attribute {
    name: String,
    ty: Type,
}

/// `@attribute name type` (the keyword already taken).
fn parse_attribute(rest: &str, path: &Path, line: usize) -> Result<Attribute, DataError> {
    let (name, ty) = first_token(rest).ok_or_else(|| err_at(path, line, "unterminated quote in an attribute name"))?;
    if name.is_empty() {
        return Err(err_at(path, line, "@attribute without a name"));
    }
    let ty = ty.trim();
    let ty = match ty.to_ascii_lowercase().as_str() {
        "numeric" | "real" | "integer" => Type::Numeric,
        _ if ty.starts_with('{') && ty.ends_with('}') => {
            let values: Option<Vec<String>> =
                split_top(&ty[1..ty.len() - 1], ',').into_iter().filter(|v| !v.is_empty()).map(unquote).collect();
            let values =
                values.ok_or_else(|| err_at(path, line, format!("attribute `{name}`: a bad nominal value")))?;
            if values.is_empty() {
                return Err(err_at(path, line, format!("attribute `{name}`: a nominal attribute without values")));
            }
            if values == ["0", "1"] {
                Type::Numeric
            } else {
                Type::Nominal(values)
            }
        }
        other => {
            let what = other.split_whitespace().next().unwrap_or("");
            return Err(err_at(
                path,
                line,
                format!("attribute `{name}`: type `{what}` is not supported (numeric or nominal {{...}})"),
            ));
        }
    };
    Ok(Attribute { name, ty })
}

/// One data row: per attribute, a number (numeric) or a declared value's index (nominal).
type RawRow = Vec<f32>;

/// A parsed ARFF file: its attributes and rows, each row with its line number.
struct Parsed {
    attrs: Vec<Attribute>,
    rows: Vec<(usize, RawRow)>,
}

fn parse(path: &Path) -> Result<Parsed, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError(format!("{}: {e}", path.display())))?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, strip_comment(l).trim()));
    let mut attrs = Vec::new();
    let mut in_data = false;
    for (line, t) in lines.by_ref() {
        if t.is_empty() {
            continue;
        }
        let keyword = t.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        match keyword.as_str() {
            "@attribute" => attrs.push(parse_attribute(&t[10..], path, line)?),
            "@relation" => {}
            "@data" => {
                in_data = true;
                break;
            }
            _ => return Err(err_at(path, line, format!("unexpected header line `{}`", truncate(t)))),
        }
    }
    if !in_data {
        return Err(DataError(format!("{}: no @data section", path.display())));
    }
    let mut rows = Vec::new();
    for (line, t) in lines {
        if t.is_empty() {
            continue;
        }
        // Rows are held densely: refused at the row that would pass the bound.
        super::check_dense(path, Some(line), "rows x attributes", (rows.len() + 1, attrs.len(), 8), text.len() as u64)?;
        let mut row = Row { path, line, attrs: &attrs, values: vec![0.0; attrs.len()] };
        match t.strip_prefix('{') {
            Some(body) => row.sparse(body)?,
            None => row.dense(t)?,
        }
        rows.push((line, row.values));
    }
    if rows.is_empty() {
        return Err(DataError(format!("{}: no data rows", path.display())));
    }
    Ok(Parsed { attrs, rows })
}

/// One data row being read.
struct Row<'a> {
    path: &'a Path,
    line: usize,
    attrs: &'a [Attribute],
    values: RawRow,
}

impl Row<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> DataError {
        err_at(self.path, self.line, msg)
    }

    fn put(&mut self, col: usize, v: &str) -> Result<(), DataError> {
        let n = self.attrs.len();
        let attr =
            self.attrs.get(col).ok_or_else(|| self.err(format!("attribute index {col} is past the {n} attributes")))?;
        let name = &attr.name;
        let text = unquote(v)
            .ok_or_else(|| self.err(format!("attribute `{name}`: unterminated quote in `{}`", truncate(v))))?;
        if text == "?" {
            return Err(self.err(format!("attribute `{name}`: missing values (?) are not supported")));
        }
        let value = match &attr.ty {
            Type::Numeric => {
                let x: f32 = text
                    .parse()
                    .map_err(|_| self.err(format!("attribute `{name}`: `{}` is not a number", truncate(&text))))?;
                if !x.is_finite() {
                    return Err(self.err(format!("attribute `{name}`: {x} is not finite")));
                }
                x
            }
            Type::Nominal(values) => match values.iter().position(|d| *d == text) {
                Some(i) => i as f32,
                None => {
                    return Err(self.err(format!(
                        "attribute `{name}`: value `{}` is not one it declares ({})",
                        truncate(&text),
                        truncate(&values.join(","))
                    )))
                }
            },
        };
        self.values[col] = value;
        Ok(())
    }

    /// `{index value, ...}` (the opening brace already taken).
    fn sparse(&mut self, body: &str) -> Result<(), DataError> {
        let body = body.strip_suffix('}').ok_or_else(|| self.err("sparse row without closing `}`"))?;
        for pair in split_top(body, ',').into_iter().filter(|p| !p.is_empty()) {
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
        let values = split_top(t, ',');
        let n = self.attrs.len();
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
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// Where each attribute goes: a feature column, a block of indicator columns (nominal:
/// declared value index -> column), or a label.
#[derive(Debug, Clone)]
enum Column {
    Feature(usize),
    Indicators(Vec<Option<usize>>),
    Label(usize),
}

/// The column layout, fixed by the training file.
#[derive(Debug, Clone)]
struct Layout {
    attrs: Vec<Attribute>,
    columns: Vec<Column>,
    features: usize,
}

impl Layout {
    /// Sorts the attributes into features and labels (every label must be an attribute)
    /// and gives each nominal feature one column per value the training rows hold (or,
    /// for a trained model's input, per value in `kept`).
    fn new(
        path: &Path,
        train: &Parsed,
        labels: &[String],
        kept: Option<&BTreeMap<String, Vec<String>>>,
    ) -> Result<Layout, DataError> {
        let label_index: HashMap<&str, usize> = labels.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut seen_labels = vec![false; labels.len()];
        let mut features = 0;
        let mut columns = Vec::with_capacity(train.attrs.len());
        for (a, attr) in train.attrs.iter().enumerate() {
            if let Some(&l) = label_index.get(attr.name.as_str()) {
                seen_labels[l] = true;
                columns.push(Column::Label(l));
                continue;
            }
            match &attr.ty {
                Type::Numeric => {
                    columns.push(Column::Feature(features));
                    features += 1;
                }
                Type::Nominal(values) => {
                    let mut used = vec![false; values.len()];
                    match kept.map(|k| k.get(&attr.name)) {
                        Some(Some(k)) => used.iter_mut().zip(values).for_each(|(u, v)| *u = k.contains(v)),
                        Some(None) => {}
                        None => train.rows.iter().for_each(|(_, row)| used[row[a] as usize] = true),
                    }
                    let cols = used
                        .iter()
                        .map(|&u| {
                            u.then(|| {
                                features += 1;
                                features - 1
                            })
                        })
                        .collect();
                    columns.push(Column::Indicators(cols));
                }
            }
        }
        let missing: Vec<&str> =
            labels.iter().zip(&seen_labels).filter(|(_, s)| !**s).map(|(n, _)| n.as_str()).collect();
        if !missing.is_empty() {
            return Err(DataError(format!(
                "{}: label count mismatch: the xml names {} labels, {} of them are not attributes here (e.g. `{}`)",
                path.display(),
                labels.len(),
                missing.len(),
                missing[0]
            )));
        }
        Ok(Layout { attrs: train.attrs.clone(), columns, features })
    }

    /// Feature attributes (a nominal one counts once).
    fn feature_attributes(&self) -> usize {
        self.columns.iter().filter(|c| !matches!(c, Column::Label(_))).count()
    }

    /// Each nominal feature's values that have a column, in column order: what a model
    /// keeps to lay out its input files the same way.
    fn kept(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (attr, column) in self.attrs.iter().zip(&self.columns) {
            if let (Column::Indicators(cols), Type::Nominal(values)) = (column, &attr.ty) {
                let kept = values.iter().zip(cols).filter(|(_, c)| c.is_some()).map(|(v, _)| v.clone()).collect();
                out.insert(attr.name.clone(), kept);
            }
        }
        out
    }

    /// The rows of a parsed file as a split. A file other than the training one must
    /// declare the same attributes in the same order; its nominal values are matched to
    /// the training file's by name.
    fn split(&self, path: &Path, parsed: &Parsed, labels: usize) -> Result<Split, DataError> {
        if parsed.attrs.len() != self.attrs.len()
            || parsed
                .attrs
                .iter()
                .zip(&self.attrs)
                .any(|(a, b)| a.name != b.name || (a.ty == Type::Numeric) != (b.ty == Type::Numeric))
        {
            return Err(DataError(format!("{}: attributes differ from the training file's", path.display())));
        }
        // Each of this file's declared nominal values -> the training declaration's index.
        let remap: Vec<Vec<Option<usize>>> = parsed
            .attrs
            .iter()
            .zip(&self.attrs)
            .map(|(mine, train)| match (&mine.ty, &train.ty) {
                (Type::Nominal(m), Type::Nominal(t)) => m.iter().map(|v| t.iter().position(|x| x == v)).collect(),
                _ => vec![],
            })
            .collect();
        let d = self.features;
        let n = parsed.rows.len();
        // One-hot nominal columns can outnumber the attributes `parse` bounded its rows by;
        // the labels (a byte each, among those attributes) are within that bound already.
        super::check_dense(path, None, "rows x features", (n, d, 4), super::file_bytes(path))?;
        let (mut xs, mut ys) = (vec![0f32; n * d], vec![0u8; n * labels]);
        for (r, (line, row)) in parsed.rows.iter().enumerate() {
            let (x, y) = (&mut xs[r * d..(r + 1) * d], &mut ys[r * labels..(r + 1) * labels]);
            for (a, (&v, column)) in row.iter().zip(&self.columns).enumerate() {
                match column {
                    Column::Feature(f) => x[*f] = v,
                    Column::Indicators(cols) => {
                        if let Some(col) = remap[a][v as usize].and_then(|t| cols[t]) {
                            x[col] = 1.0;
                        }
                    }
                    Column::Label(j) => match &parsed.attrs[a].ty {
                        Type::Numeric => y[*j] = u8::from(v != 0.0),
                        Type::Nominal(values) => {
                            let text = &values[v as usize];
                            let num: f32 = text.parse().map_err(|_| {
                                err_at(
                                    path,
                                    *line,
                                    format!("label `{}`: value `{text}` is not 0 or 1", parsed.attrs[a].name),
                                )
                            })?;
                            y[*j] = u8::from(num != 0.0);
                        }
                    },
                }
            }
        }
        Ok(Split { n, x: super::Features::Dense(xs), y: ys })
    }
}

/// Rows of one ARFF file with the given label attributes (prediction input), laid out
/// as the model's training file was: `nominal` holds, per nominal feature, the values
/// that have a column.
pub fn read_arff_rows(
    path: &Path,
    labels: &[String],
    nominal: &BTreeMap<String, Vec<String>>,
) -> Result<Split, DataError> {
    let parsed = parse(path)?;
    let layout = Layout::new(path, &parsed, labels, Some(nominal))?;
    layout.split(path, &parsed, labels.len())
}

/// Reads a MULAN train/test pair with its label file.
pub fn read_mulan(train: &Path, test: &Path, xml: &Path) -> Result<RawData, DataError> {
    let labels = read_label_xml(xml)?;
    let (tr, te) = (parse(train)?, parse(test)?);
    let layout = Layout::new(train, &tr, &labels, None)?;
    let train_split = layout.split(train, &tr, labels.len())?;
    let test_split = layout.split(test, &te, labels.len())?;
    let dense =
        !std::fs::read_to_string(train).map(|t| t.lines().any(|l| l.trim_start().starts_with('{'))).unwrap_or(false);
    let name = xml.file_stem().and_then(|s| s.to_str()).unwrap_or("mulan").to_string();
    tracing::debug!(%name, attributes = layout.feature_attributes(), columns = layout.features, "mulan layout");
    let columns = super::Columns { nominal: layout.kept(), ..Default::default() };
    Ok(RawData {
        name,
        features: layout.features,
        label_names: labels,
        train: train_split,
        val: None,
        test: test_split,
        dense,
        columns,
        unseen_labels: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_names_lose_their_quotes_and_escapes() {
        assert_eq!(first_token("'Swainson\\'s Thrush' {0,1}").unwrap().0, "Swainson's Thrush");
        assert_eq!(first_token("\"say \\\"hi\\\"\" numeric").unwrap().0, "say \"hi\"");
        assert_eq!(first_token("plain numeric").unwrap(), ("plain".to_string(), " numeric"));
        assert!(first_token("'open numeric").is_none());
        assert_eq!(strip_comment("1,2 % a comment"), "1,2 ");
        assert_eq!(strip_comment("'50% off',1"), "'50% off',1");
        assert_eq!(split_top("'a,b',c , 'd\\'e'", ','), ["'a,b'", "c", "'d\\'e'"]);
    }
}
