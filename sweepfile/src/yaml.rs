//! YAML values as JSON (a parameter's values).

/// A scalar or a list of scalars, as JSON; a non-finite number or a mapping is refused.
pub(crate) fn yaml_to_json(v: &serde_norway::Value) -> Result<serde_json::Value, String> {
    use serde_norway::Value as Y;
    Ok(match v {
        Y::Null => serde_json::Value::Null,
        Y::Bool(b) => serde_json::Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::json!(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::json!(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(format!("{f} is not a finite number"));
                }
                serde_json::json!(f)
            }
        }
        Y::String(s) => serde_json::Value::String(s.clone()),
        Y::Sequence(items) => serde_json::Value::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(_) | Y::Tagged(_) => return Err("a parameter value must be a scalar or a list".into()),
    })
}
