//! `bench/gpu-all.sh`, the one command for whoever has a GPU, dry-run on the CPU with
//! tiny sizes, so it cannot rot before a GPU is lent: every section runs, the results
//! file says so, and the device checks hold on the CPU (dropout masks equal, the sparse
//! layer equal to dense rows, its backward repeating exactly).

use std::process::Command;

use sweep_testkit::procs::bin;

#[test]
fn the_gpu_script_dry_runs_on_the_cpu() {
    let (Some(python), Some(_)) = (sweep_testkit::torch_python(), sweep_testkit::mulan_dir("emotions")) else { return };
    let out = tempfile::tempdir().unwrap().keep().join("gpu-all.md");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/gpu-all.sh");
    let run = Command::new("bash")
        .args([script, "--device", "cpu", "--tiny", "--out"])
        .arg(&out)
        .env("WORKER", bin("sweep-worker"))
        .env("PYTHON", &python)
        .output()
        .unwrap();
    let results = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(run.status.success(), "{results}\n{}", String::from_utf8_lossy(&run.stderr));
    for line in [
        "--fuse auto's K and its memory: ok",
        "parity: ok",
        "K = 9: ok",
        "K = 27: ok",
        "text: ok",
        "encoder: ok",
        "all checks ran",
    ] {
        assert!(results.contains(line), "no `{line}` in:\n{results}");
    }
    let doctor = results.lines().find(|l| l.starts_with('{')).expect("doctor's JSON");
    let doctor: serde_json::Value = serde_json::from_str(doctor).unwrap();
    assert_eq!(doctor["dropout_masks_equal_cpu"], true);
    assert_eq!(doctor["sparse_layer_backward_repeats_exactly"], true);
    assert!(doctor["sparse_layer_max_abs_diff_vs_dense"].as_f64().unwrap() < 1e-5, "{doctor}");
    assert!(results.contains("| fused | 2 |"), "{results}");
}
