//! The extreme-classification sparse text format: an optional header line
//! `samples features labels`, then one row per line, `l1,l2 f:v f:v` (a row with no
//! labels starts with a space). Rows stay sparse.

use std::path::Path;

use super::{err_at, Csr, DataError, Features, RawData, Split};

/// One row: its label indices and its (feature, value) pairs.
type Row = (Vec<usize>, Vec<(usize, f32)>);

struct Rows {
    header: Option<(usize, usize)>,
    rows: Vec<Row>,
}

fn parse(path: &Path) -> Result<Rows, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError(format!("{}: {e}", path.display())))?;
    let mut header = None;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let nums: Vec<&str> = line.split_whitespace().collect();
        if i == 0 && nums.len() == 3 && nums.iter().all(|t| t.parse::<usize>().is_ok()) {
            header = Some((nums[1].parse().unwrap_or(0), nums[2].parse().unwrap_or(0)));
            continue;
        }
        let (label_part, feats) = if line.starts_with(char::is_whitespace) {
            ("", line.trim())
        } else {
            line.split_once(char::is_whitespace).unwrap_or((line, ""))
        };
        let mut labels = Vec::new();
        for l in label_part.split(',').filter(|s| !s.is_empty()) {
            labels.push(l.parse::<usize>().map_err(|_| err_at(path, i + 1, format!("label `{l}` is not an index")))?);
        }
        let mut fv = Vec::new();
        for tok in feats.split_whitespace() {
            let (f, v) = tok
                .split_once(':')
                .ok_or_else(|| err_at(path, i + 1, format!("feature `{tok}` is not `index:value`")))?;
            let f: usize =
                f.parse().map_err(|_| err_at(path, i + 1, format!("feature index `{f}` is not a number")))?;
            let v: f32 = v.parse().map_err(|_| err_at(path, i + 1, format!("feature value `{v}` is not a number")))?;
            if !v.is_finite() {
                return Err(err_at(path, i + 1, format!("feature value {v} is not finite")));
            }
            fv.push((f, v));
        }
        rows.push((labels, fv));
    }
    if rows.is_empty() {
        return Err(DataError(format!("{}: no data rows", path.display())));
    }
    Ok(Rows { header, rows })
}

pub fn read_xc(train: &Path, test: &Path) -> Result<RawData, DataError> {
    let (a, b) = (parse(train)?, parse(test)?);
    let max_of = |r: &Rows, f: &dyn Fn(&Row) -> usize| r.rows.iter().map(f).max().unwrap_or(0);
    let feat = |row: &Row| row.1.iter().map(|p| p.0 + 1).max().unwrap_or(0);
    let lab = |row: &Row| row.0.iter().map(|p| p + 1).max().unwrap_or(0);
    let (d, l) = match a.header.or(b.header) {
        Some(h) => h,
        None => (max_of(&a, &feat).max(max_of(&b, &feat)), max_of(&a, &lab).max(max_of(&b, &lab))),
    };
    if l == 0 {
        return Err(DataError(format!("{}: no labels (empty label set)", train.display())));
    }
    // The label matrix is dense (a byte per row and label) and every label gets a name:
    // what the header declares is checked against the files before either is allocated.
    let file_bytes = super::file_bytes(train) + super::file_bytes(test);
    super::check_dense(train, None, "rows x labels", (a.rows.len() + b.rows.len(), l, 1), file_bytes)?;
    super::check_dense(train, None, "label names", (1, l, 32), file_bytes)?;
    if d > 100_000_000 {
        return Err(DataError(format!(
            "{}: {d} features are more than the first layer takes (100,000,000)",
            train.display()
        )));
    }
    let to_split = |r: &Rows, path: &Path| rows_to_split(r, path, d, l);
    let name = train.file_stem().and_then(|s| s.to_str()).unwrap_or("xc").to_string();
    Ok(RawData {
        name,
        features: d,
        label_names: (0..l).map(|i| format!("label_{i}")).collect(),
        train: to_split(&a, train)?,
        test: to_split(&b, test)?,
        val: None,
        dense: false,
        unseen_labels: Default::default(),
        columns: Default::default(),
    })
}

fn rows_to_split(r: &Rows, path: &Path, d: usize, l: usize) -> Result<Split, DataError> {
    let mut x = Csr::empty(d);
    let mut y = vec![0u8; r.rows.len() * l];
    for (i, (labels, feats)) in r.rows.iter().enumerate() {
        for &j in labels {
            if j >= l {
                return Err(DataError(format!(
                    "{}: row {}: label {j} >= {l} labels (label count mismatch)",
                    path.display(),
                    i + 1
                )));
            }
            y[i * l + j] = 1;
        }
        let mut entries: Vec<(usize, f64)> = Vec::with_capacity(feats.len());
        for &(f, v) in feats {
            if f >= d {
                return Err(DataError(format!("{}: row {}: feature {f} >= {d} features", path.display(), i + 1)));
            }
            entries.push((f, v as f64));
        }
        // Sorted by column; a feature written twice keeps its last value (as a dense write would).
        entries.sort_by_key(|e| e.0);
        entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        x.push_row(entries);
    }
    Ok(Split { n: r.rows.len(), x: Features::Sparse(x), y })
}

/// Rows of one XC file for a model of `d` features and `l` labels (prediction input).
pub fn read_xc_rows(path: &Path, d: usize, l: usize) -> Result<Split, DataError> {
    rows_to_split(&parse(path)?, path, d, l)
}
