//! The user-data every instance boots with (EC2's cloud-init runs it; the local
//! provider runs it with `bash`). One template, `bootstrap.sh`, filled in per instance.

use uuid::Uuid;

const TEMPLATE: &str = include_str!("bootstrap.sh");

/// The torch wheel the bootstrap installs where the image has no PyTorch (the version
/// the worker is built and tested against).
pub const TORCH_VERSION: &str = "2.11.0";

/// What one instance's bootstrap needs.
pub struct Bootstrap<'a> {
    /// The coordinator's URL as the instance reaches it.
    pub coordinator: &'a str,
    pub worker_sha256: &'a str,
    pub fleet: Uuid,
    pub instance: Uuid,
    /// The instance's single-use join token.
    pub join_token: &'a str,
    pub join_expires: chrono::DateTime<chrono::Utc>,
    /// The CA certificate (PEM) the instance trusts for the coordinator, when TLS is on.
    pub ca_pem: Option<&'a str>,
    pub idle_secs: u64,
    pub max_minutes: u64,
}

/// Characters every value put between single quotes may use.
fn quotable(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/[]@%+=,".contains(c))
}

impl Bootstrap<'_> {
    /// The script, or why a value cannot go into it.
    pub fn render(&self) -> Result<String, String> {
        for (what, v) in [
            ("coordinator URL", self.coordinator),
            ("worker hash", self.worker_sha256),
            ("join token", self.join_token),
        ] {
            if v.is_empty() || !quotable(v) {
                return Err(format!("{what} `{v}` cannot be put in a bootstrap script"));
            }
        }
        let ca = self.ca_pem.unwrap_or("").trim();
        if ca.lines().any(|l| l.trim() == "SWEEP_CA_PEM") || ca.contains('\'') {
            return Err("the CA certificate is not a plain PEM file".into());
        }
        Ok(TEMPLATE
            .replace("{{COORDINATOR}}", self.coordinator)
            .replace("{{WORKER_SHA256}}", self.worker_sha256)
            .replace("{{FLEET}}", &self.fleet.to_string())
            .replace("{{INSTANCE}}", &self.instance.to_string())
            .replace("{{JOIN_TOKEN}}", self.join_token)
            .replace("{{JOIN_EXPIRES}}", &self.join_expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .replace("{{CA_PEM}}", ca)
            .replace("{{IDLE_SECS}}", &self.idle_secs.to_string())
            .replace("{{MAX_MINUTES}}", &self.max_minutes.to_string())
            .replace("{{TORCH_VERSION}}", TORCH_VERSION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(coordinator: &str) -> Bootstrap<'_> {
        Bootstrap {
            coordinator,
            worker_sha256: "ab12",
            fleet: Uuid::nil(),
            instance: Uuid::max(),
            join_token: "swp_ijoin_00ff",
            join_expires: chrono::DateTime::UNIX_EPOCH,
            ca_pem: None,
            idle_secs: 90,
            max_minutes: 120,
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let s = sample("https://10.0.0.5:50051").render().unwrap();
        assert!(!s.contains("{{"), "unfilled placeholder in\n{s}");
        assert!(s.contains("COORDINATOR='https://10.0.0.5:50051'"));
        assert!(s.contains("printf '%s\\n' 'swp_ijoin_00ff'"));
        assert!(s.contains("MAX_MINUTES='120'"));
    }

    #[test]
    fn the_script_parses_as_bash_with_and_without_a_ca() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        for pem in [None, Some(ca)] {
            let mut b = sample("https://coordinator.internal:50051");
            b.ca_pem = pem;
            let out =
                std::process::Command::new("bash").args(["-n", "-c", &b.render().unwrap()]).output().expect("bash");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn values_that_could_break_out_of_quotes_are_refused() {
        for bad in ["http://x/'; rm -rf /; '", "http://x/$(id)", "http://x y", ""] {
            let err = sample(bad).render().unwrap_err();
            assert!(err.starts_with("coordinator URL"), "{bad}: {err}");
        }
    }
}
