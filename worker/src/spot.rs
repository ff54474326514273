//! Spot interruption notices from the instance metadata service (IMDSv2: a session
//! token, then `spot/instance-action` and the rebalance recommendation). Best effort:
//! lease expiry stays the ground truth when the notice never comes.

use std::time::Duration;

/// The metadata service's base URL: `--imds-endpoint`, else
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` (as the AWS SDKs read it), else EC2's own.
pub fn endpoint(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT").ok())
        .unwrap_or_else(|| "http://169.254.169.254".into())
        .trim_end_matches('/')
        .to_string()
}

pub struct Imds {
    http: reqwest::Client,
    base: String,
}

impl Imds {
    pub fn new(base: String) -> anyhow::Result<Imds> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build()?;
        Ok(Imds { http, base })
    }

    async fn token(&self) -> reqwest::Result<String> {
        self.http
            .put(format!("{}/latest/api/token", self.base))
            .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }

    /// Whether the service answers at all (on EC2 it does; elsewhere nothing listens).
    pub async fn reachable(&self) -> bool {
        self.token().await.is_ok()
    }

    /// The notice, if one is posted: which one and what it says.
    pub async fn notice(&self) -> reqwest::Result<Option<String>> {
        let token = self.token().await?;
        for path in ["spot/instance-action", "events/recommendations/rebalance"] {
            let r = self
                .http
                .get(format!("{}/latest/meta-data/{path}", self.base))
                .header("X-aws-ec2-metadata-token", &token)
                .send()
                .await?;
            if r.status().is_success() {
                return Ok(Some(format!("{path}: {}", r.text().await?.trim())));
            }
        }
        Ok(None)
    }
}
