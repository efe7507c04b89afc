//! Resource requirements across layers: built-in default `resources` apply only where no template,
//! inline field or override sets any (a default memory limit under a template's larger request would
//! make every pod invalid), and a resolved `requests` above its `limits` is refused up front.

use serde_json::Value;

/// Where `resources` blocks sit in the settings of any component.
const RESOURCE_PATHS: &[&[&str]] = &[
    &["resources"],
    &["postgres", "resources"],
    &["multipooler", "resources"],
];

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

/// Removes from `defaults` every resources block that a higher layer sets.
pub fn yield_default_resources(defaults: &mut Value, higher: &[Value]) {
    for path in RESOURCE_PATHS {
        if higher.iter().any(|layer| at(layer, path).is_some()) {
            let (last, parents) = path.split_last().expect("paths are non-empty");
            if let Some(parent) = parents
                .iter()
                .try_fold(&mut *defaults, |v, key| v.get_mut(key))
                && let Some(map) = parent.as_object_mut()
            {
                map.remove(*last);
            }
        }
    }
}

/// The first resource whose request exceeds its limit, as `(path, resource, request, limit)`.
pub fn request_above_limit(merged: &Value) -> Option<(String, String, String, String)> {
    for path in RESOURCE_PATHS {
        let Some(resources) = at(merged, path) else {
            continue;
        };
        let (Some(requests), Some(limits)) = (resources.get("requests"), resources.get("limits"))
        else {
            continue;
        };
        let Some(requests) = requests.as_object() else {
            continue;
        };
        for (name, request) in requests {
            let (Some(request), Some(limit)) =
                (request.as_str(), limits.get(name).and_then(Value::as_str))
            else {
                continue;
            };
            if let (Some(r), Some(l)) = (parse_quantity(request), parse_quantity(limit))
                && r > l
            {
                return Some((
                    path.join("."),
                    name.clone(),
                    request.to_string(),
                    limit.to_string(),
                ));
            }
        }
    }
    None
}

/// A Kubernetes quantity as a number; `None` for forms it does not need to compare.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_compare_across_units() {
        assert!(parse_quantity("8Gi") > parse_quantity("2Gi"));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("1e3"), None);
        assert_eq!(parse_quantity("lots"), None);
    }

    #[test]
    fn a_template_setting_resources_replaces_the_default_block() {
        let mut defaults = json!({"postgres": {"resources": {"limits": {"memory": "2Gi"}}}, "multipooler": {"resources": {"limits": {"memory": "256Mi"}}}});
        yield_default_resources(
            &mut defaults,
            &[json!({"postgres": {"resources": {"requests": {"memory": "8Gi"}}}})],
        );
        assert_eq!(
            defaults,
            json!({"postgres": {}, "multipooler": {"resources": {"limits": {"memory": "256Mi"}}}})
        );
    }

    #[test]
    fn requests_above_limits_are_found() {
        let merged =
            json!({"postgres": {"resources": {"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}}});
        assert_eq!(
            request_above_limit(&merged),
            Some((
                "postgres.resources".into(),
                "cpu".into(),
                "4".into(),
                "2".into()
            ))
        );
        assert_eq!(
            request_above_limit(
                &json!({"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}})
            ),
            None
        );
    }
}
