//! "Would applying this change anything?" The server fills in defaults and other managers' fields, so
//! an object is up to date when every field we would set already has our value.

use serde_json::Value;

/// True when every field of `desired` is present in `actual` with an equal value. Lists compare item by
/// item and must have the same length.
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d.iter().all(|(k, v)| match a.get(k) {
            Some(found) => is_subset(v, found),
            None => v.is_null() || is_empty(v),
        }),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(x, y)| is_subset(x, y))
        }
        (Value::Number(d), Value::Number(a)) => d.as_f64() == a.as_f64(),
        _ => desired == actual,
    }
}

/// The server drops empty maps and lists, so their absence is no difference.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.values().all(|v| v.is_null() || is_empty(v)),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_are_not_a_difference() {
        let desired = json!({"spec": {"replicas": 2, "template": {"labels": {}}}});
        let actual = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10}, "status": {}});
        assert!(is_subset(&desired, &actual));
    }

    #[test]
    fn changed_values_and_list_lengths_are() {
        assert!(!is_subset(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!is_subset(&json!({"a": [1]}), &json!({"a": [1, 2]})));
        assert!(!is_subset(&json!({"a": "x"}), &json!({})));
    }
}
