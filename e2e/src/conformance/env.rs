//! A container's environment as the kubelet builds it: `envFrom`, then `env` in order (values,
//! Secret and ConfigMap keys read from the API server, downward API fields), each value able to
//! refer to earlier ones with `$(VAR)`; and the same `$(VAR)` expansion in command and args.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::ResourceExt;

/// What a pod's env may refer to: its identity, its address, and the namespace's Secrets and
/// ConfigMaps (fetched once).
pub struct PodContext<'a> {
    pub pod: &'a Pod,
    pub ip: Ipv4Addr,
    pub secrets: &'a BTreeMap<String, Secret>,
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
}

impl PodContext<'_> {
    pub fn secret_key(&self, name: &str, key: &str) -> Result<Vec<u8>> {
        let secret = self
            .secrets
            .get(name)
            .ok_or_else(|| anyhow!("Secret {name} does not exist"))?;
        if let Some(ByteString(v)) = secret.data.as_ref().and_then(|d| d.get(key)) {
            return Ok(v.clone());
        }
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.clone().into_bytes())
            .ok_or_else(|| anyhow!("Secret {name} has no key {key}"))
    }

    pub fn config_map_key(&self, name: &str, key: &str) -> Result<String> {
        let cm = self
            .config_maps
            .get(name)
            .ok_or_else(|| anyhow!("ConfigMap {name} does not exist"))?;
        cm.data
            .as_ref()
            .and_then(|d| d.get(key))
            .cloned()
            .ok_or_else(|| anyhow!("ConfigMap {name} has no key {key}"))
    }

    /// A downward API field (`fieldRef.fieldPath`).
    pub fn field(&self, path: &str) -> Result<String> {
        let meta = &self.pod.metadata;
        let spec = self.pod.spec.as_ref();
        let label = |map: &Option<BTreeMap<String, String>>, key: &str| {
            map.as_ref()
                .and_then(|m| m.get(key.trim_matches(|c| c == '\'' || c == '"')))
                .cloned()
                .unwrap_or_default()
        };
        Ok(match path {
            "metadata.name" => self.pod.name_any(),
            "metadata.namespace" => self.pod.namespace().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "status.podIP" | "status.podIPs" => self.ip.to_string(),
            "status.hostIP" | "status.hostIPs" => Ipv4Addr::LOCALHOST.to_string(),
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            "spec.serviceAccountName" => spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
            p if p.starts_with("metadata.labels[") => {
                label(&meta.labels, &p["metadata.labels[".len()..p.len() - 1])
            }
            p if p.starts_with("metadata.annotations[") => label(
                &meta.annotations,
                &p["metadata.annotations[".len()..p.len() - 1],
            ),
            other => bail!("downward API field {other} is not emulated"),
        })
    }
}

/// The container's environment, in order, with `$(VAR)` references resolved.
pub fn container_env(c: &Container, ctx: &PodContext) -> Result<Vec<(String, String)>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(name, _)| *name != k);
        vars.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(s) = &from.secret_ref {
            let secret = ctx.secrets.get(&s.name);
            for (k, ByteString(v)) in secret.and_then(|s| s.data.clone()).unwrap_or_default() {
                set(&mut vars, format!("{prefix}{k}"), utf8(v)?);
            }
        }
        if let Some(r) = &from.config_map_ref {
            let cm = ctx.config_maps.get(&r.name);
            for (k, v) in cm.and_then(|c| c.data.clone()).unwrap_or_default() {
                set(&mut vars, format!("{prefix}{k}"), v);
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (_, Some(from)) => {
                if let Some(s) = &from.secret_key_ref {
                    utf8(ctx.secret_key(&s.name, &s.key)?)?
                } else if let Some(r) = &from.config_map_key_ref {
                    ctx.config_map_key(&r.name, &r.key)?
                } else if let Some(f) = &from.field_ref {
                    ctx.field(&f.field_path)?
                } else {
                    bail!(
                        "env {} of container {}: only secretKeyRef, configMapKeyRef and fieldRef are emulated",
                        e.name,
                        c.name
                    )
                }
            }
            (Some(v), None) => expand(v, &vars),
            (None, None) => String::new(),
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(vars)
}

fn utf8(v: Vec<u8>) -> Result<String> {
    String::from_utf8(v).context("a Secret value used as an env var is not UTF-8")
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined reference is kept
/// as written, and `$$` is a literal `$`.
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[i..i + 2 + end + 1]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_the_kubelet() {
        let vars = vec![("POD_IP".to_string(), "127.0.10.1".to_string())];
        assert_eq!(
            expand("--hostname=$(POD_IP)", &vars),
            "--hostname=127.0.10.1"
        );
        assert_eq!(expand("$(MISSING)-x", &vars), "$(MISSING)-x");
        assert_eq!(expand("$$(POD_IP)", &vars), "$(POD_IP)");
        assert_eq!(expand("a$b", &vars), "a$b");
    }
}
