//! A model directory as one blob: the files an encoder reads (the caller names them:
//! `sweep_file::ENCODER_FILES`) in a tar archive whose headers hold nothing but their
//! names and sizes (no times, owners or modes), in a fixed order, so the same directory
//! always packs to the same bytes, hence the same content address: resubmitting uploads
//! nothing, and workers fetch it once. Unpacking takes only those names (no paths, no
//! links), so an archive cannot write outside its directory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Packs the files `names` of `dir` into `out`; a missing file is one line naming it.
pub fn pack_model_dir(dir: &Path, names: &[&str], out: &Path) -> anyhow::Result<()> {
    for name in names {
        anyhow::ensure!(
            dir.join(name).is_file(),
            "{}: no {name} (a model directory needs {})",
            dir.display(),
            names.join(", ")
        );
    }
    let mut tar = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(out)?));
    for name in names {
        let path = dir.join(name);
        let file = std::fs::File::open(&path).with_context(|| format!("read {}", path.display()))?;
        let mut h = tar::Header::new_gnu();
        h.set_size(file.metadata()?.len());
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, file).with_context(|| format!("pack {}", path.display()))?;
    }
    tar.into_inner()?.flush()?;
    Ok(())
}

/// Unpacks an archive made by [`pack_model_dir`] with the same `names` into `dest`
/// (made whole under a temporary name, then renamed: a directory that exists is
/// complete). Any other entry, or a missing one, refuses the archive.
pub fn unpack_model_dir(archive: &Path, names: &[&str], dest: &Path) -> anyhow::Result<()> {
    let tmp: PathBuf = dest.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let unpacked = unpack_into(archive, names, &tmp);
    if unpacked.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    unpacked?;
    match std::fs::rename(&tmp, dest) {
        Ok(()) => Ok(()),
        // Another process unpacked it first.
        Err(_) if dest.is_dir() => Ok(std::fs::remove_dir_all(&tmp)?),
        Err(e) => Err(e.into()),
    }
}

fn unpack_into(archive: &Path, names: &[&str], tmp: &Path) -> anyhow::Result<()> {
    let bad = |why: String| anyhow::anyhow!("{}: not a model archive: {why}", archive.display());
    let mut tar = tar::Archive::new(std::fs::File::open(archive)?);
    let mut seen = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let Some(&known) = names.iter().find(|f| **f == name) else {
            return Err(bad(format!("an entry `{name}`")));
        };
        if entry.header().entry_type() != tar::EntryType::Regular || seen.contains(&known) {
            return Err(bad(format!("`{name}` is not one regular file")));
        }
        let mut out = std::fs::File::create(tmp.join(known))?;
        std::io::copy(&mut (&mut entry).take(u64::MAX), &mut out)?;
        seen.push(known);
    }
    match names.iter().find(|f| !seen.contains(f)) {
        Some(missing) => Err(bad(format!("no {missing}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCODER_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

    #[test]
    fn a_directory_packs_to_the_same_bytes_and_unpacks_to_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("model");
        std::fs::create_dir(&src).unwrap();
        for (i, name) in ENCODER_FILES.iter().enumerate() {
            std::fs::write(src.join(name), format!("{name} {i}").repeat(100)).unwrap();
        }
        std::fs::write(src.join("vocab.txt"), "not packed").unwrap();
        let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
        pack_model_dir(&src, &ENCODER_FILES, &a).unwrap();
        // Touched files pack the same: no times in the headers.
        std::fs::File::options()
            .append(true)
            .open(src.join("config.json"))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH)
            .unwrap();
        pack_model_dir(&src, &ENCODER_FILES, &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let out = dir.path().join("out.d");
        unpack_model_dir(&a, &ENCODER_FILES, &out).unwrap();
        for name in ENCODER_FILES {
            assert_eq!(std::fs::read(out.join(name)).unwrap(), std::fs::read(src.join(name)).unwrap());
        }
        assert!(!out.join("vocab.txt").exists());
        std::fs::remove_file(src.join("tokenizer.json")).unwrap();
        let e = pack_model_dir(&src, &ENCODER_FILES, &a).unwrap_err().to_string();
        assert!(e.contains("no tokenizer.json"), "{e}");
    }

    #[test]
    fn an_archive_with_another_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        tar.append_data(&mut h, "sub/config.json", &b"x"[..]).unwrap();
        tar.into_inner().unwrap();
        let e = unpack_model_dir(&path, &ENCODER_FILES, &dir.path().join("out.d")).unwrap_err().to_string();
        assert!(e.contains("not a model archive"), "{e}");
        assert!(!dir.path().join("out.d").exists());
    }
}
