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

pub use crate::quantity::parse as parse_quantity;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_compare_across_units() {
        assert!(parse_quantity("8Gi") > parse_quantity("2Gi"));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
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
