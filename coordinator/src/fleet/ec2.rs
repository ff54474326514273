//! The EC2 provider: `aws-sdk-ec2` with the default credential chain and region.
//! `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_EC2`) points it at an emulator.
//!
//! Every instance is launched with its Sweep id as the client token (EC2 returns the
//! same instance for a repeated token), tagged `sweep:fleet`, `sweep:instance` and
//! `sweep:managed`, IMDSv2 required, and shutdown behaviour `terminate`, so the
//! bootstrap's scheduled shutdown ends the instance (and its bill) even when the
//! coordinator is gone.

use std::collections::HashMap;

use aws_config::BehaviorVersion;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, IamInstanceProfileSpecification, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceStateName,
    InstanceType, LocationType, MarketType, ResourceType, ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag,
    TagSpecification,
};
use aws_sdk_ec2::Client;
use base64::Engine;
use tokio::sync::{Mutex, OnceCell};
use uuid::Uuid;

use super::{
    Described, FleetSpec, Launch, Observed, Provider, ProviderError, ProviderKind, ProviderResult, TAG_FLEET,
    TAG_INSTANCE, TAG_MANAGED,
};

/// The image used when a fleet names none: AWS's Deep Learning Base AMI (NVIDIA driver,
/// CUDA, Python; the bootstrap installs the torch wheel on it).
const DEFAULT_IMAGE_NAME: &str = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *";

#[derive(Default)]
pub struct Ec2 {
    base: OnceCell<aws_config::SdkConfig>,
    clients: Mutex<HashMap<String, Client>>,
}

fn fail(message: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(ProviderKind::Ec2, message)
}

/// An SDK error as one line: the service's code and message when it answered, else
/// the whole chain of causes (no route, no credentials, ...).
fn sdk_error<E, R>(call: &str, e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(s) => fail(format!("{call}: {}: {}", s.code().unwrap_or("error"), s.message().unwrap_or("no message"))),
        None => fail(format!("{call}: {}", DisplayErrorContext(&e))),
    }
}

fn tag(key: &str, value: impl Into<String>) -> Tag {
    Tag::builder().key(key).value(value).build()
}

impl Ec2 {
    async fn client(&self, region: &str) -> ProviderResult<Client> {
        let base = self
            .base
            .get_or_init(|| async {
                use aws_smithy_http_client::tls;
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
                    .build_https();
                aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
            })
            .await;
        let region = if region.is_empty() {
            base.region().map(|r| r.to_string()).ok_or_else(|| {
                fail("no region: pass --region, or set AWS_REGION (or a region in ~/.aws/config) for the coordinator")
            })?
        } else {
            region.to_string()
        };
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&region) {
            return Ok(c.clone());
        }
        let conf = aws_sdk_ec2::config::Builder::from(base).region(aws_config::Region::new(region.clone())).build();
        let c = Client::from_conf(conf);
        clients.insert(region, c.clone());
        Ok(c)
    }

    /// The newest default image in the region.
    async fn default_image(&self, c: &Client, region: &str) -> ProviderResult<String> {
        let out = c
            .describe_images()
            .owners("amazon")
            .filters(Filter::builder().name("name").values(DEFAULT_IMAGE_NAME).build())
            .filters(Filter::builder().name("state").values("available").build())
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImages", e))?;
        out.images()
            .iter()
            .filter(|i| i.image_id().is_some())
            .max_by(|a, b| a.creation_date().cmp(&b.creation_date()))
            .and_then(|i| i.image_id().map(str::to_string))
            .ok_or_else(|| {
                fail(format!("no image named `{DEFAULT_IMAGE_NAME}` in region `{region}`: pass --image AMI"))
            })
    }

    /// The current spot price of the spec's type in its region: the highest over the
    /// region's zones (the subnet picks the zone), with where and when; None when EC2
    /// lists none.
    pub async fn spot_price(&self, spec: &FleetSpec) -> ProviderResult<Option<(f64, String)>> {
        let c = self.client(&spec.region).await?;
        let out = c
            .describe_spot_price_history()
            .instance_types(InstanceType::from(spec.instance_type.as_str()))
            .product_descriptions("Linux/UNIX")
            .start_time(aws_sdk_ec2::primitives::DateTime::from(std::time::SystemTime::now()))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSpotPriceHistory", e))?;
        let highest = out
            .spot_price_history()
            .iter()
            .filter_map(|h| {
                let usd: f64 = h.spot_price()?.parse().ok()?;
                let when = h.timestamp().map(ToString::to_string).unwrap_or_default();
                Some((usd, format!("{} at {when}", h.availability_zone().unwrap_or("a zone"))))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        Ok(highest.map(|(usd, at)| (usd, format!("{at} (the highest zone of {})", spec.region))))
    }
}

/// A plausible region name (`us-east-1`, `ap-southeast-2`, `us-gov-west-1`).
fn region_ok(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

impl Provider for Ec2 {
    async fn prepare(&self, mut spec: FleetSpec) -> ProviderResult<FleetSpec> {
        if !spec.region.is_empty() && !region_ok(&spec.region) {
            return Err(fail(format!("region: `{}` is not a region name (like us-east-1)", spec.region)));
        }
        let c = self.client(&spec.region).await?;
        if spec.region.is_empty() {
            spec.region = c.config().region().map(|r| r.to_string()).unwrap_or_default();
        }
        let region = spec.region.clone();
        let offered = c
            .describe_instance_type_offerings()
            .location_type(LocationType::Region)
            .filters(Filter::builder().name("instance-type").values(&spec.instance_type).build())
            .send()
            .await
            .map_err(|e| sdk_error(&format!("DescribeInstanceTypeOfferings in {region}"), e))?;
        if offered.instance_type_offerings().is_empty() {
            return Err(fail(format!("instance type `{}` is not offered in region `{region}`", spec.instance_type)));
        }
        if spec.image.is_empty() {
            spec.image = self.default_image(&c, &region).await?;
        } else {
            let found = c
                .describe_images()
                .image_ids(&spec.image)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("image `{}` in {region}", spec.image), e))?;
            if found.images().is_empty() {
                return Err(fail(format!("image `{}` not found in region `{region}`", spec.image)));
            }
        }
        Ok(spec)
    }

    async fn launch(&self, l: &Launch<'_>) -> ProviderResult<String> {
        let s = l.spec;
        let c = self.client(&s.region).await?;
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(tag(TAG_FLEET, l.fleet.to_string()))
            .tags(tag(TAG_INSTANCE, l.instance.to_string()))
            .tags(tag(TAG_MANAGED, "true"))
            .tags(tag("Name", format!("sweep-worker-{}", &l.instance.simple().to_string()[..8])))
            .build();
        let mut req = c
            .run_instances()
            .image_id(&s.image)
            .instance_type(InstanceType::from(s.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(l.instance.to_string())
            // The SDK sends user data as given; EC2 wants it base64-encoded.
            .user_data(base64::engine::general_purpose::STANDARD.encode(l.user_data))
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_tokens(HttpTokensState::Required)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .tag_specifications(tags);
        if s.spot {
            req = req.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        if !s.subnet.is_empty() {
            req = req.subnet_id(&s.subnet);
        }
        for g in &s.security_groups {
            req = req.security_group_ids(g);
        }
        if !s.key_name.is_empty() {
            req = req.key_name(&s.key_name);
        }
        if !s.instance_profile.is_empty() {
            let p = IamInstanceProfileSpecification::builder();
            let p = if s.instance_profile.starts_with("arn:") {
                p.arn(&s.instance_profile)
            } else {
                p.name(&s.instance_profile)
            };
            req = req.iam_instance_profile(p.build());
        }
        let out = req.send().await.map_err(|e| sdk_error(&format!("RunInstances in {}", s.region), e))?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_string)
            .ok_or_else(|| fail("RunInstances answered without an instance"))
    }

    async fn describe(&self, spec: &FleetSpec, fleet: Uuid) -> ProviderResult<Vec<Described>> {
        let c = self.client(&spec.region).await?;
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = c
                .describe_instances()
                .filters(Filter::builder().name(format!("tag:{TAG_FLEET}")).values(fleet.to_string()).build())
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeInstances", e))?;
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = i.instance_id() else { continue };
                let instance = i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(TAG_INSTANCE))
                    .and_then(|t| t.value())
                    .and_then(|v| Uuid::parse_str(v).ok());
                let state = match i.state().and_then(|s| s.name()) {
                    Some(InstanceStateName::Pending) => Observed::Pending,
                    Some(InstanceStateName::Running) => Observed::Running,
                    Some(InstanceStateName::Terminated) => Observed::Terminated,
                    _ => Observed::Ending,
                };
                found.push(Described { provider_id: id.to_string(), instance, state });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    async fn terminate(&self, spec: &FleetSpec, ids: &[String]) -> ProviderResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let c = self.client(&spec.region).await?;
        for chunk in ids.chunks(500) {
            c.terminate_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("TerminateInstances", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::region_ok;

    #[test]
    fn region_names() {
        for ok in ["us-east-1", "eu-central-2", "ap-southeast-4", "us-gov-west-1"] {
            assert!(region_ok(ok), "{ok}");
        }
        for bad in ["", "us-east", "useast1", "US-EAST-1", "us-east-x", "mars-north-1", "us--1"] {
            assert!(!region_ok(bad), "{bad}");
        }
    }
}
