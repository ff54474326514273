//! What an instance costs per hour: `--price-per-hour` when given; for an EC2 spot
//! fleet, EC2's spot price history for its type in its region (the highest zone, since
//! the subnet picks the zone); else the dated on-demand table built in (`prices.csv`:
//! its region, date and source are in its header). A local fleet without a price is
//! free. An EC2 type with no price anywhere is refused before anything launches.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::{FleetSpec, ProviderKind};

/// The on-demand table, parsed once.
pub struct Table {
    pub region: String,
    pub date: String,
    pub source: String,
    prices: BTreeMap<String, f64>,
}

pub static TABLE: LazyLock<Table> = LazyLock::new(|| Table::parse(include_str!("prices.csv")).expect("prices.csv"));

impl Table {
    pub fn parse(text: &str) -> Result<Table, String> {
        let mut meta = BTreeMap::new();
        let mut prices = BTreeMap::new();
        for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if let Some(c) = line.strip_prefix('#') {
                if let Some((k, v)) = c.split_once(':') {
                    meta.insert(k.trim().to_string(), v.trim().to_string());
                }
                continue;
            }
            if line.is_empty() || line == "instance_type,usd_per_hour" {
                continue;
            }
            let (t, p) = line.split_once(',').ok_or(format!("prices.csv:{n}: `{line}` is not TYPE,USD"))?;
            let p: f64 = p.parse().map_err(|_| format!("prices.csv:{n}: `{p}` is not a price"))?;
            if !(p.is_finite() && p > 0.0) || prices.insert(t.to_string(), p).is_some() {
                return Err(format!("prices.csv:{n}: {t}: a positive price, once"));
            }
        }
        let get = |k: &str| meta.get(k).cloned().ok_or(format!("prices.csv: no `# {k}:` line"));
        Ok(Table { region: get("region")?, date: get("date")?, source: get("source")?, prices })
    }

    pub fn get(&self, instance_type: &str) -> Option<f64> {
        self.prices.get(instance_type).copied()
    }

    pub fn types(&self) -> impl Iterator<Item = (&str, f64)> {
        self.prices.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// How a price read from EC2's spot price history names its source.
pub const SPOT_SOURCE: &str = "EC2 spot price history";

/// A fleet's price per instance-hour and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub usd_per_hour: f64,
    pub source: String,
}

/// `given` is `--price-per-hour` (0: not given). `spot` is what EC2's spot price history
/// said for this spec (None: not asked, or nothing there).
/// The highest price per instance-hour taken (the dearest EC2 instance costs about
/// 400 USD an hour): a larger one is a typo, and an absurd one (1e308) would overflow
/// the cost sums that every budget check runs.
pub const MAX_USD_PER_HOUR: f64 = 10_000.0;

pub fn price(spec: &FleetSpec, given: f64, spot: Option<(f64, String)>) -> Result<Price, String> {
    if !given.is_finite() || !(0.0..=MAX_USD_PER_HOUR).contains(&given) {
        return Err(format!("price_per_hour: {given} (USD per instance-hour, 0 to {MAX_USD_PER_HOUR})"));
    }
    if given > 0.0 {
        return Ok(Price { usd_per_hour: given, source: "--price-per-hour".into() });
    }
    if spec.provider == ProviderKind::Local {
        return Ok(Price { usd_per_hour: 0.0, source: "local instances, no --price-per-hour: counted as free".into() });
    }
    if let Some((usd, where_)) = spot.filter(|s| s.0.is_finite() && s.0 > 0.0 && s.0 <= MAX_USD_PER_HOUR) {
        return Ok(Price { usd_per_hour: usd, source: format!("{SPOT_SOURCE}: {where_}") });
    }
    let t = &*TABLE;
    let Some(usd) = t.get(&spec.instance_type) else {
        return Err(format!(
            "instance_type {}: no price in the on-demand table ({}, {}) and no --price-per-hour: refused, nothing launched",
            spec.instance_type, t.region, t.date
        ));
    };
    let mut source = format!("on-demand table ({}, {})", t.region, t.date);
    if spec.spot {
        source.push_str(", spot price history had none");
    }
    if !spec.region.is_empty() && spec.region != t.region {
        source.push_str(&format!("; the fleet runs in {}, where prices differ", spec.region));
    }
    Ok(Price { usd_per_hour: usd, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(provider: ProviderKind, instance_type: &str, spot: bool) -> FleetSpec {
        FleetSpec {
            provider,
            instance_type: instance_type.into(),
            spot,
            region: "us-east-1".into(),
            subnet: String::new(),
            security_groups: vec![],
            image: String::new(),
            key_name: String::new(),
            instance_profile: String::new(),
        }
    }

    /// The families people train on are all priced, and the table names its date,
    /// region and source.
    #[test]
    fn the_table_prices_every_gpu_family_and_says_when_and_where() {
        let t = &*TABLE;
        assert_eq!((t.region.as_str(), t.date.as_str()), ("us-east-1", "2026-08-26"));
        assert!(t.source.contains("instances.vantage.sh"));
        for family in ["g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5"] {
            let sizes: Vec<&str> =
                t.types().filter(|(k, _)| k.split('.').next() == Some(family)).map(|(k, _)| k).collect();
            assert!(!sizes.is_empty(), "no {family} in the table");
        }
        // Every type `fleet up` accepts without an override is one the table prices.
        for (ty, usd) in t.types() {
            let p = price(&spec(ProviderKind::Ec2, ty, false), 0.0, None).unwrap();
            assert_eq!(p.usd_per_hour, usd);
            assert!(p.source.contains("2026-08-26"));
        }
        assert_eq!(t.get("g5.xlarge"), Some(1.006));
        assert_eq!(t.get("p5.48xlarge"), Some(55.04));
    }

    #[test]
    fn an_override_wins_spot_comes_from_history_and_an_unknown_type_is_refused() {
        let ec2 = spec(ProviderKind::Ec2, "g5.xlarge", true);
        assert_eq!(price(&ec2, 2.5, None).unwrap().usd_per_hour, 2.5);
        let spot = price(&ec2, 0.0, Some((0.41, "us-east-1b at 2026-12-02T10:00:00Z".into()))).unwrap();
        assert_eq!(spot.usd_per_hour, 0.41);
        assert!(spot.source.starts_with("EC2 spot price history"));
        let fallback = price(&ec2, 0.0, None).unwrap();
        assert_eq!(fallback.usd_per_hour, 1.006);
        assert!(fallback.source.contains("spot price history had none"));
        let err = price(&spec(ProviderKind::Ec2, "g9.xlarge", false), 0.0, None).unwrap_err();
        assert!(err.contains("g9.xlarge") && err.contains("nothing launched"), "{err}");
        assert!(!err.contains('\n'));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(price(&ec2, bad, None).unwrap_err().starts_with("price_per_hour:"));
        }
        let local = price(&spec(ProviderKind::Local, "", false), 0.0, None).unwrap();
        assert_eq!(local.usd_per_hour, 0.0);
        assert_eq!(price(&spec(ProviderKind::Local, "", false), 3600.0, None).unwrap().usd_per_hour, 3600.0);
    }

    #[test]
    fn a_broken_table_is_refused_with_its_line() {
        let head = "# region: r\n# date: d\n# source: s\ninstance_type,usd_per_hour\n";
        assert!(Table::parse(&format!("{head}g5.xlarge,1\n")).is_ok());
        assert_eq!(Table::parse(&format!("{head}g5.xlarge,x\n")).err().unwrap(), "prices.csv:5: `x` is not a price");
        assert!(Table::parse(&format!("{head}a,1\na,2\n")).err().unwrap().contains("prices.csv:6"));
        assert!(Table::parse("instance_type,usd_per_hour\n").err().unwrap().contains("region"));
    }
}
