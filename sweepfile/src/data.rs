//! Which files a dataset config reads, and binding them to uploaded blobs. Pure: paths
//! are returned as written (relative ones resolve against `$SWEEP_DATA_DIR` where they
//! are read); the CLI finds and uploads them, the coordinator binds the hashes.

use std::collections::BTreeMap;

use crate::{DataSource, DatasetConfig, Trial};

/// The MULAN label file beside a train file: `x/name-train.arff` -> `x/name.xml`.
pub fn sibling_xml(train: &str) -> String {
    let (dir, file) = match train.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), train),
    };
    let stem = file.rsplit_once('.').map(|(s, _)| s).unwrap_or(file);
    let base = stem.strip_suffix("-train").unwrap_or(stem);
    format!("{dir}{base}.xml")
}

/// The directory relative data paths are found under: `$SWEEP_DATA_DIR`, else
/// `../shared/datasets`. One rule for the trainer, the CLI's uploads and the tests.
pub fn data_dir() -> std::path::PathBuf {
    std::env::var_os("SWEEP_DATA_DIR").map(Into::into).unwrap_or_else(|| "../shared/datasets".into())
}

/// Whether a data path names an object store (`s3://bucket/key`) that workers read
/// directly, rather than a file to upload.
pub fn is_remote(path: &str) -> bool {
    path.starts_with("s3://")
}

/// (role, path as written) of every file the dataset reads; none for synthetic data or
/// a dataset already bound to blobs.
pub fn data_files(d: &DatasetConfig) -> Vec<(&'static str, String)> {
    if !d.blobs.is_empty() {
        return vec![];
    }
    let named = |files: &[(&'static str, &Option<String>)]| -> Vec<(&'static str, String)> {
        files.iter().filter_map(|(role, p)| p.as_ref().map(|p| (*role, p.clone()))).collect()
    };
    match &d.source {
        DataSource::Synthetic(_) => vec![],
        DataSource::Mulan(m) => match (&m.name, &m.train) {
            (_, Some(train)) => {
                let mut v = named(&[("train", &m.train), ("test", &m.test)]);
                v.push(("xml", m.xml.clone().unwrap_or_else(|| sibling_xml(train))));
                v
            }
            (Some(name), None) => vec![
                ("train", format!("mulan/{name}/{name}-train.arff")),
                ("test", format!("mulan/{name}/{name}-test.arff")),
                ("xml", format!("mulan/{name}/{name}.xml")),
            ],
            (None, None) => vec![],
        },
        DataSource::Xc(x) => named(&[("train", &x.train), ("test", &x.test)]),
        DataSource::Text(t) => {
            let encoder = t.encoder.as_ref().and_then(|e| e.path.clone());
            let mut v =
                named(&[("train", &t.train), ("val", &t.val), ("test", &t.test), ("label_names", &t.label_names)]);
            v.extend(encoder.map(|p| ("encoder", p)));
            v
        }
    }
}

/// The local path of each role, as a worker fills them in after fetching blobs.
pub fn set_data_file(d: &mut DatasetConfig, role: &str, path: String) -> Result<(), String> {
    let p = Some(path);
    match (&mut d.source, role) {
        (DataSource::Mulan(m), "train") => m.train = p,
        (DataSource::Mulan(m), "test") => m.test = p,
        (DataSource::Mulan(m), "xml") => m.xml = p,
        (DataSource::Xc(x), "train") => x.train = p,
        (DataSource::Xc(x), "test") => x.test = p,
        (DataSource::Text(t), "train") => t.train = p,
        (DataSource::Text(t), "val") => t.val = p,
        (DataSource::Text(t), "test") => t.test = p,
        (DataSource::Text(t), "label_names") => t.label_names = p,
        (DataSource::Text(t), "encoder") => match &mut t.encoder {
            Some(e) => e.path = p,
            None => return Err("dataset.blobs: `encoder` given, but the trial has no frozen encoder".into()),
        },
        (_, other) => return Err(format!("dataset.blobs: a {} dataset has no file `{other}`", d.kind().as_str())),
    }
    Ok(())
}

/// Forgets every path (they are bound to blobs now); a MULAN name stays (it names the
/// dataset, and reads nothing once bound).
fn clear_paths(d: &mut DatasetConfig) {
    match &mut d.source {
        DataSource::Synthetic(_) => {}
        DataSource::Mulan(m) => (m.train, m.test, m.xml) = (None, None, None),
        DataSource::Xc(x) => (x.train, x.test) = (None, None),
        DataSource::Text(t) => {
            (t.train, t.val, t.test, t.label_names) = (None, None, None, None);
            if let Some(e) = &mut t.encoder {
                e.path = None;
            }
        }
    }
}

/// Binds each trial's data files to the blobs uploaded for them (`path as written ->
/// SHA-256`): the config then carries the hashes instead of the paths, and the trial's
/// identity is recomputed. A dataset whose files were none of them uploaded stays as it
/// is (workers read it from their own disk); one with only some uploaded is an error.
/// The one binding: submit, TPE proposals and confirm sweeps all come through here.
pub fn bind_data(trials: &mut [Trial], uploaded: &BTreeMap<String, String>) -> Result<(), String> {
    if uploaded.is_empty() {
        return Ok(());
    }
    for t in trials.iter_mut() {
        let files = data_files(&t.config.dataset);
        let found: Vec<_> = files.iter().filter_map(|(role, p)| uploaded.get(p).map(|h| (*role, h.clone()))).collect();
        if found.is_empty() {
            continue;
        }
        if let Some((_, missing)) = files.iter().find(|(_, p)| !uploaded.contains_key(p)) {
            return Err(format!("dataset file `{missing}` was not uploaded with the others"));
        }
        let d = &mut t.config.dataset;
        d.blobs = found.into_iter().map(|(r, h)| (r.to_string(), h)).collect();
        clear_paths(d);
        t.hash = crate::config_hash(&t.config);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_by_kind() {
        let mut d = DatasetConfig::mulan("bibtex");
        assert_eq!(
            data_files(&d),
            vec![
                ("train", "mulan/bibtex/bibtex-train.arff".to_string()),
                ("test", "mulan/bibtex/bibtex-test.arff".to_string()),
                ("xml", "mulan/bibtex/bibtex.xml".to_string())
            ]
        );
        set_data_file(&mut d, "train", "/data/x/yeast-train.arff".into()).unwrap();
        set_data_file(&mut d, "test", "/data/x/yeast-test.arff".into()).unwrap();
        assert_eq!(data_files(&d)[2], ("xml", "/data/x/yeast.xml".to_string()));
        d.blobs.insert("train".into(), "ab".into());
        assert!(data_files(&d).is_empty(), "bound: nothing to read from disk");
        assert!(data_files(&DatasetConfig::default()).is_empty(), "synthetic reads nothing");
    }

    #[test]
    fn binding_replaces_paths_with_hashes_and_changes_the_identity() {
        let d = DatasetConfig {
            source: DataSource::Xc(crate::XcData { train: Some("a.txt".into()), test: Some("b.txt".into()) }),
            ..Default::default()
        };
        let config = crate::TrialConfig { dataset: d, ..Default::default() };
        let hash = crate::config_hash(&config);
        let mut trials = vec![Trial { params: Default::default(), config, hash: hash.clone() }];
        let mut up = BTreeMap::from([("a.txt".to_string(), "h1".to_string())]);
        assert!(bind_data(&mut trials, &up).unwrap_err().contains("`b.txt` was not uploaded"));
        up.insert("b.txt".into(), "h2".into());
        bind_data(&mut trials, &up).unwrap();
        let d = &trials[0].config.dataset;
        assert_eq!(d.blobs["train"], "h1");
        assert_eq!(d.source, DataSource::Xc(crate::XcData::default()), "paths forgotten");
        assert_ne!(trials[0].hash, hash);
    }
}
