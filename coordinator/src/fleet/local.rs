//! The local provider: an "instance" is the rendered bootstrap run by `bash` in a
//! directory of its own under `--fleet-local-dir`, as a process group of its own. The
//! directory holds its tags (`tags.json`), its process group id (`pgid`), the script and
//! its console log; `terminated` marks one that ended. Describing reads the directories,
//! so a restarted coordinator finds (adopts) the instances an earlier one launched.
//! For trying fleets without a cloud, and for the end-to-end tests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Described, FleetSpec, Launch, Observed, Provider, ProviderError, ProviderKind, ProviderResult};

pub struct Local {
    pub root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Tags {
    fleet: Uuid,
    instance: Uuid,
}

fn fail(message: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(ProviderKind::Local, message)
}

fn provider_id(instance: Uuid) -> String {
    format!("local-{}", instance.simple())
}

/// The process group an instance's bootstrap runs as, once launched.
fn pgid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("pgid")).ok().and_then(|p| p.trim().parse().ok())
}

/// Whether a process is alive (a zombie is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

impl Local {
    fn dir(&self, instance: Uuid) -> PathBuf {
        self.root.join(instance.simple().to_string())
    }

    fn state_of(dir: &Path) -> Observed {
        let pgid = pgid(dir);
        let terminating = dir.join("terminated").exists();
        match pgid.map(alive) {
            Some(true) if terminating => Observed::Ending,
            Some(true) => Observed::Running,
            Some(false) => Observed::Terminated,
            None if terminating => Observed::Terminated,
            None => Observed::Pending,
        }
    }
}

impl Provider for Local {
    async fn prepare(&self, spec: FleetSpec) -> ProviderResult<FleetSpec> {
        std::fs::create_dir_all(&self.root).map_err(|e| fail(format!("{}: {e}", self.root.display())))?;
        Ok(spec)
    }

    async fn launch(&self, l: &Launch<'_>) -> ProviderResult<String> {
        let dir = self.dir(l.instance);
        if dir.join("pgid").exists() {
            return Ok(provider_id(l.instance)); // launched before: the same instance
        }
        let io = |what: &str, e: std::io::Error| fail(format!("{what} {}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(|e| io("create", e))?;
        let tags = serde_json::to_string(&Tags { fleet: l.fleet, instance: l.instance }).expect("tags");
        std::fs::write(dir.join("tags.json"), tags).map_err(|e| io("write tags in", e))?;
        let script = dir.join("user-data.sh");
        std::fs::write(&script, l.user_data).map_err(|e| io("write user data in", e))?;
        let log = std::fs::File::create(dir.join("console.log")).map_err(|e| io("create log in", e))?;
        let mut child = tokio::process::Command::new("bash")
            .arg(&script)
            .env("SWEEP_INSTANCE_ROOT", &dir)
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| io("log", e))?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| io("start bash in", e))?;
        let pid = child.id().ok_or_else(|| fail("bootstrap exited at once"))?;
        std::fs::write(dir.join("pgid"), pid.to_string()).map_err(|e| io("write pgid in", e))?;
        // Reap it when it ends (an adopted one, started by an earlier coordinator, is init's).
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(provider_id(l.instance))
    }

    async fn describe(&self, _spec: &FleetSpec, fleet: Uuid) -> ProviderResult<Vec<Described>> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Ok(vec![]) };
        let mut found = Vec::new();
        for e in entries.flatten() {
            let dir = e.path();
            let Some(tags) =
                std::fs::read(dir.join("tags.json")).ok().and_then(|t| serde_json::from_slice::<Tags>(&t).ok())
            else {
                continue;
            };
            if tags.fleet == fleet {
                found.push(Described {
                    provider_id: provider_id(tags.instance),
                    instance: Some(tags.instance),
                    state: Local::state_of(&dir),
                });
            }
        }
        Ok(found)
    }

    async fn terminate(&self, _spec: &FleetSpec, ids: &[String]) -> ProviderResult<()> {
        for id in ids {
            let Some(dir) = id.strip_prefix("local-").map(|s| self.root.join(s)) else {
                return Err(fail(format!("`{id}` is not a local instance id")));
            };
            if let Some(pgid) = pgid(&dir) {
                if alive(pgid) {
                    // The whole group: the bootstrap and the worker it started (which drains on TERM).
                    let _ = std::process::Command::new("kill").args(["-TERM", "--", &format!("-{pgid}")]).status();
                }
            }
            if dir.exists() {
                std::fs::write(dir.join("terminated"), "").map_err(|e| fail(format!("{}: {e}", dir.display())))?;
            }
        }
        Ok(())
    }
}
