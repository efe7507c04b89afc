//! Layered merge of settings: built-in defaults, then the template's section, then inline fields, then
//! overrides. Maps merge by key; lists and scalars replace; an absent (or null) field keeps the value
//! below it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Merges `top` into `base` in place.
pub fn merge_into(base: &mut Value, top: &Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (key, value) in top {
                if value.is_null() {
                    continue;
                }
                match base.get_mut(key) {
                    Some(existing) => merge_into(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, top) if !top.is_null() => *base = top.clone(),
        _ => {}
    }
}

/// Merges the layers bottom to top and reads the result as `T`.
pub fn merge_layers<T: DeserializeOwned>(layers: &[Value]) -> Result<T, serde_json::Error> {
    let mut merged = Value::Object(Default::default());
    for layer in layers {
        merge_into(&mut merged, layer);
    }
    serde_json::from_value(merged)
}

/// A layer from any serializable settings; `None` is an empty layer.
pub fn layer<T: Serialize>(value: Option<&T>) -> Value {
    value
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_by_key_lists_replace() {
        let mut base =
            json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}, "args": ["a", "b"]});
        merge_into(
            &mut base,
            &json!({"resources": {"limits": {"cpu": "2"}}, "args": ["c"]}),
        );
        assert_eq!(
            base,
            json!({"resources": {"limits": {"cpu": "2", "memory": "1Gi"}}, "args": ["c"]})
        );
    }

    #[test]
    fn null_keeps_the_value_below() {
        let mut base = json!({"replicas": 3});
        merge_into(&mut base, &json!({"replicas": null}));
        assert_eq!(base, json!({"replicas": 3}));
    }
}
