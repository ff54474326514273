//! Which files a dataset config reads, and binding them to uploaded blobs. Pure: paths
//! are returned as written (relative ones resolve against `$SWEEP_DATA_DIR` where they
//! are read); the CLI finds and uploads them, the coordinator binds the hashes.

use std::collections::BTreeMap;

use crate::{DatasetConfig, DatasetKind, Trial};

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
    match d.kind {
        DatasetKind::Synthetic => vec![],
        DatasetKind::Mulan => match (&d.name, &d.train) {
            (_, Some(train)) => {
                let mut v = vec![("train", train.clone())];
                if let Some(test) = &d.test {
                    v.push(("test", test.clone()));
                }
                v.push(("xml", d.xml.clone().unwrap_or_else(|| sibling_xml(train))));
                v
            }
            (Some(name), None) => vec![
                ("train", format!("mulan/{name}/{name}-train.arff")),
                ("test", format!("mulan/{name}/{name}-test.arff")),
                ("xml", format!("mulan/{name}/{name}.xml")),
            ],
            (None, None) => vec![],
        },
        DatasetKind::Xc => {
            d.train.iter().map(|t| ("train", t.clone())).chain(d.test.iter().map(|t| ("test", t.clone()))).collect()
        }
    }
}

/// Binds each trial's data files to the blobs uploaded for them (`path as written ->
/// SHA-256`): the config then carries the hashes instead of the paths, and the trial's
/// identity is recomputed. A dataset whose files were none of them uploaded stays as it
/// is (workers read it from their own disk); one with only some uploaded is an error.
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
        d.train = None;
        d.test = None;
        d.xml = None;
        t.hash = crate::config_hash(&t.config);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_by_kind() {
        let mut d = DatasetConfig { kind: DatasetKind::Mulan, name: Some("bibtex".into()), ..Default::default() };
        assert_eq!(
            data_files(&d),
            vec![
                ("train", "mulan/bibtex/bibtex-train.arff".to_string()),
                ("test", "mulan/bibtex/bibtex-test.arff".to_string()),
                ("xml", "mulan/bibtex/bibtex.xml".to_string())
            ]
        );
        d.train = Some("/data/x/yeast-train.arff".into());
        d.test = Some("/data/x/yeast-test.arff".into());
        assert_eq!(data_files(&d)[2], ("xml", "/data/x/yeast.xml".to_string()));
        d.blobs.insert("train".into(), "ab".into());
        assert!(data_files(&d).is_empty(), "bound: nothing to read from disk");
        assert!(data_files(&DatasetConfig::default()).is_empty(), "synthetic reads nothing");
    }

    #[test]
    fn binding_replaces_paths_with_hashes_and_changes_the_identity() {
        let d = DatasetConfig {
            kind: DatasetKind::Xc,
            train: Some("a.txt".into()),
            test: Some("b.txt".into()),
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
        assert_eq!((d.train.as_deref(), d.test.as_deref()), (None, None));
        assert_ne!(trials[0].hash, hash);
    }
}
