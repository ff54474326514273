//! Featurized text datasets on disk, content-addressed: the key is a SHA-256 of the
//! dataset's settings (featurizer, fields, format) with each file replaced by the
//! SHA-256 of its bytes, so trials that read the same data with the same settings
//! featurize once per machine, whichever path the files came by. The file is a JSON
//! header and the splits' arrays (little-endian); a file that does not read back is
//! featurized again and replaced.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sweep_file::DatasetConfig;

use super::{Columns, Csr, DataError, Features, RawData, Split};

const MAGIC: &[u8; 8] = b"SWPFEAT1";

fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut f = std::fs::File::open(path).map_err(|e| DataError(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// A model directory's content: the SHA-256 of each file an encoder reads.
fn sha256_dir(dir: &Path) -> Result<String, DataError> {
    let mut h = Sha256::new();
    for name in sweep_file::ENCODER_FILES {
        h.update(format!("{name} {}\n", sha256_file(&dir.join(name))?));
    }
    Ok(hex::encode(h.finalize()))
}

/// The content address of a dataset's featurized form.
pub fn key(cfg: &DatasetConfig) -> Result<String, DataError> {
    let mut source = serde_json::to_value(&cfg.source).expect("json");
    for (role, path) in sweep_file::data_files(cfg) {
        let path = super::resolve(&path);
        let sha = if path.is_dir() { sha256_dir(&path)? } else { sha256_file(&path)? };
        if role == "encoder" {
            source["encoder"]["path"] = serde_json::json!(sha);
        } else {
            source[role] = serde_json::json!(sha);
        }
    }
    Ok(hex::encode(Sha256::digest(serde_json::to_vec(&source).expect("json"))))
}

#[derive(Serialize, Deserialize)]
struct Header {
    name: String,
    features: usize,
    label_names: Vec<String>,
    columns: Columns,
    unseen_labels: BTreeMap<String, usize>,
    /// (rows, entries) of train, test and, if present, val (entries: rows x features
    /// when dense).
    splits: Vec<(usize, usize)>,
    /// Dense rows (a frozen encoder's embeddings) rather than sparse ones.
    #[serde(default)]
    dense: bool,
}

fn entries(s: &Split) -> usize {
    match &s.x {
        Features::Sparse(c) => c.nnz(),
        Features::Dense(x) => x.len(),
    }
}

fn write(path: &Path, raw: &RawData) -> std::io::Result<()> {
    let splits: Vec<&Split> = [&raw.train, &raw.test].into_iter().chain(raw.val.as_ref()).collect();
    let header = Header {
        name: raw.name.clone(),
        features: raw.features,
        label_names: raw.label_names.clone(),
        columns: raw.columns.clone(),
        unseen_labels: raw.unseen_labels.clone(),
        splits: splits.iter().map(|s| (s.n, entries(s))).collect(),
        dense: raw.dense,
    };
    let head = serde_json::to_vec(&header)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    w.write_all(MAGIC)?;
    w.write_all(&(head.len() as u64).to_le_bytes())?;
    w.write_all(&head)?;
    for s in splits {
        match &s.x {
            Features::Sparse(c) => {
                c.offsets.iter().try_for_each(|v| w.write_all(&v.to_le_bytes()))?;
                c.indices.iter().try_for_each(|v| w.write_all(&v.to_le_bytes()))?;
                c.values.iter().try_for_each(|v| w.write_all(&v.to_le_bytes()))?;
            }
            Features::Dense(x) => x.iter().try_for_each(|v| w.write_all(&v.to_le_bytes()))?,
        }
        w.write_all(&s.y)?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A cursor over the file's bytes.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn i64s(&mut self, n: usize) -> Option<Vec<i64>> {
        Some(self.take(n * 8)?.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect())
    }
    fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        Some(self.take(n * 4)?.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
    }
}

fn read(path: &Path) -> Option<RawData> {
    let bytes = std::fs::read(path).ok()?;
    let mut b = Bytes(&bytes);
    (b.take(8)? == MAGIC).then_some(())?;
    let len = u64::from_le_bytes(b.take(8)?.try_into().ok()?) as usize;
    let h: Header = serde_json::from_slice(b.take(len)?).ok()?;
    let l = h.label_names.len();
    let mut splits = Vec::new();
    for &(n, nnz) in &h.splits {
        let x = if h.dense {
            (nnz == n * h.features).then_some(())?;
            Features::Dense(b.f32s(nnz)?)
        } else {
            Features::Sparse(Csr {
                cols: h.features,
                offsets: b.i64s(n + 1)?,
                indices: b.i64s(nnz)?,
                values: b.f32s(nnz)?,
            })
        };
        let y = b.take(n * l)?.to_vec();
        splits.push(Split { n, x, y });
    }
    b.0.is_empty().then_some(())?;
    let mut it = splits.into_iter();
    let (train, test, val) = (it.next()?, it.next()?, it.next());
    Some(RawData {
        name: h.name,
        features: h.features,
        label_names: h.label_names,
        train,
        val,
        test,
        dense: h.dense,
        columns: h.columns,
        unseen_labels: h.unseen_labels,
    })
}

/// The featurized dataset from `dir`, or read and featurized now and kept there.
pub fn read_or_featurize(dir: &Path, cfg: &DatasetConfig) -> Result<RawData, DataError> {
    let started = std::time::Instant::now();
    let path: PathBuf = dir.join(format!("featurized-{}", key(cfg)?));
    if path.exists() {
        if let Some(raw) = read(&path) {
            if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                let _ = f.set_modified(std::time::SystemTime::now());
            }
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(file = %path.display(), seconds, "featurized dataset from the cache");
            return Ok(raw);
        }
        tracing::warn!(file = %path.display(), "cached featurized dataset unreadable: featurizing again");
    }
    let raw = super::read(cfg)?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), columns = raw.features, "dataset featurized");
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| write(&path, &raw)) {
        tracing::warn!(file = %path.display(), error = %e, "featurized dataset not cached");
    }
    Ok(raw)
}
