//! The field reference in `docs/api.md`, generated from the CRD schemas so that it can never drift
//! from what the API server enforces: every field, its type, default, description and rules.

use std::fmt::Write;

use serde_json::Value;

/// Fields whose schema is a Kubernetes type documented upstream; the reference names them and stops.
const UPSTREAM: &[(&str, &str)] = &[
    ("affinity", "core/v1 Affinity"),
    ("resources", "core/v1 ResourceRequirements"),
    (
        "dataVolumeClaimTemplate",
        "core/v1 PersistentVolumeClaimSpec",
    ),
    ("imagePullSecrets", "list of core/v1 LocalObjectReference"),
    ("tolerations", "list of core/v1 Toleration"),
    ("conditions", "list of meta/v1 Condition"),
];

pub fn markdown() -> String {
    let mut out = String::from(HEADER);
    for crd in crate::crd::all() {
        let kind = &crd.spec.names.kind;
        let short = crd
            .spec
            .names
            .short_names
            .clone()
            .unwrap_or_default()
            .join(", ");
        let Some(version) = crd.spec.versions.first() else {
            continue;
        };
        let Some(schema) = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            continue;
        };
        let Ok(schema) = serde_json::to_value(schema) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n## {kind}\n\n`{}/{}`, namespaced, short name `{short}`.\n",
            crd.spec.group, version.name
        );
        if let Some(description) = schema
            .pointer("/properties/spec/description")
            .and_then(Value::as_str)
        {
            let _ = writeln!(out, "{description}\n");
        }
        let _ = writeln!(
            out,
            "| Field | Type | Default | Description |\n|---|---|---|---|"
        );
        for section in ["spec", "status"] {
            if let Some(sub) = schema.pointer(&format!("/properties/{section}")) {
                walk(&mut out, section, sub);
            }
        }
        let mut rule_lines = String::new();
        collect_rules(&mut rule_lines, "", &schema);
        if !rule_lines.is_empty() {
            let _ = writeln!(
                out,
                "\nValidation rules (CEL, enforced by the API server):\n\n| Where | Rule | Message |\n|---|---|---|\n{rule_lines}"
            );
        }
    }
    out
}

const HEADER: &str = "# API reference\n\n\
Generated from the CRDs by `cargo run -p multigres-api --bin crdgen -- --docs docs/api.md`; a test fails when it is stale. \
Defaults that resolution applies (rather than the schema) are listed in [defaults.md](defaults.md); the design choices \
behind the API are in [api-design.md](api-design.md).\n\n\
Every component block (`multiadmin`, `multigateway`, `multiorch`, a shard pool, a topology server) takes either \
`deploymentTemplate` plus optional `overrides`, or the same fields inline, directly in the block. Resolution order: \
built-in defaults, then the template's section, then inline fields, then overrides; maps merge by key, lists replace.\n";

fn type_of(schema: &Value) -> String {
    let base = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let mut text = match base {
        "array" => format!(
            "list of {}",
            schema.get("items").map(type_of).unwrap_or_default()
        ),
        "object" if schema.get("additionalProperties").is_some() => "map".to_string(),
        other => other.to_string(),
    };
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(|v| format!("`{v}`"))
            .collect();
        text = format!("enum: {}", values.join(" \\| "));
    }
    for (key, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("maxItems", "max items"),
    ] {
        if let Some(n) = schema.get(key).and_then(Value::as_f64) {
            let _ = write!(text, ", {label} {n}");
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let _ = write!(text, ", pattern `{}`", pattern.replace('|', "\\|"));
    }
    text
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn walk(out: &mut String, path: &str, schema: &Value) {
    let description = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let default = schema
        .get("default")
        .map(|d| format!("`{d}`"))
        .unwrap_or_default();
    let leaf = path
        .rsplit('.')
        .next()
        .unwrap_or(path)
        .trim_end_matches("[]");
    if let Some((_, upstream)) = UPSTREAM.iter().find(|(name, _)| *name == leaf) {
        let _ = writeln!(
            out,
            "| `{path}` | {upstream} | {default} | {} |",
            cell(description)
        );
        return;
    }
    let _ = writeln!(
        out,
        "| `{path}` | {} | {default} | {} |",
        cell(&type_of(schema)),
        cell(description)
    );
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            walk(out, &format!("{path}.{name}"), sub);
        }
    }
    let nested = [
        (schema.get("items"), "[]"),
        (schema.get("additionalProperties"), ".<key>"),
    ];
    for (sub, suffix) in nested {
        if let Some(properties) = sub
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
        {
            for (name, child) in properties {
                walk(out, &format!("{path}{suffix}.{name}"), child);
            }
        }
    }
}

fn collect_rules(out: &mut String, path: &str, schema: &Value) {
    let leaf = path
        .rsplit('.')
        .next()
        .unwrap_or(path)
        .trim_end_matches("[]");
    if UPSTREAM.iter().any(|(name, _)| *name == leaf) {
        return;
    }
    if let Some(list) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in list {
            let expression = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let place = if path.is_empty() { "(object)" } else { path };
            let _ = writeln!(
                out,
                "| `{place}` | `{}` | {} |",
                cell(expression),
                cell(message)
            );
        }
    }
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let _ = writeln!(
            out,
            "| `{path}` | entries unique by `name` (list-type map) | Duplicate value |"
        );
    }
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            if path.is_empty() && name == "metadata" {
                continue;
            }
            collect_rules(out, &join(name), sub);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_rules(out, &format!("{path}[]"), items);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        collect_rules(out, &format!("{path}.<key>"), values);
    }
}
