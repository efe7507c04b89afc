//! A pod's volumes as host folders: a PersistentVolumeClaim is a folder per claim (it outlives the
//! pod, as the claim does), an emptyDir a folder per pod, and Secret, ConfigMap, downward API and
//! projected volumes are rendered as files from the objects the API server holds, honouring
//! `items`, `path`, `mode` and `defaultMode`. Everything is owned by the pod's user and fsGroup.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{KeyToPath, Pod, Volume, VolumeMount};
use kube::ResourceExt;

use super::env::PodContext;
use super::sandbox::Bind;

const DEFAULT_MODE: i32 = 0o644;

/// Makes every volume of the pod under `work`; returns volume name -> host folder.
pub fn materialize(
    ctx: &PodContext,
    work: &Path,
    uid: u32,
    gid: u32,
) -> Result<BTreeMap<String, PathBuf>> {
    let pod = ctx.pod;
    let mut out = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = volume_dir(pod, v, work)?;
        std::fs::create_dir_all(&dir)?;
        render(ctx, v, &dir)?;
        chown_tree(&dir, uid, gid)?;
        out.insert(v.name.clone(), dir);
    }
    Ok(out)
}

fn volume_dir(pod: &Pod, v: &Volume, work: &Path) -> Result<PathBuf> {
    let pod_dir = work.join("pods").join(pod.name_any()).join("volumes");
    Ok(if let Some(pvc) = &v.persistent_volume_claim {
        work.join("claims").join(&pvc.claim_name)
    } else if v.empty_dir.is_some()
        || v.secret.is_some()
        || v.config_map.is_some()
        || v.projected.is_some()
        || v.downward_api.is_some()
    {
        pod_dir.join(&v.name)
    } else {
        bail!(
            "volume {} of pod {}: only persistentVolumeClaim, emptyDir, secret, configMap, downwardAPI and projected are emulated",
            v.name,
            pod.name_any()
        )
    })
}

fn render(ctx: &PodContext, v: &Volume, dir: &Path) -> Result<()> {
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let keys = secret_keys(ctx, &name);
        write_items(dir, &keys, &s.items, s.default_mode, |k| {
            ctx.secret_key(&name, k)
        })?;
    }
    if let Some(c) = &v.config_map {
        let keys = config_map_keys(ctx, &c.name);
        write_items(dir, &keys, &c.items, c.default_mode, |k| {
            ctx.config_map_key(&c.name, k).map(String::into_bytes)
        })?;
    }
    if let Some(d) = &v.downward_api {
        for item in d.items.iter().flatten() {
            if let Some(f) = &item.field_ref {
                let mode = item.mode.or(d.default_mode);
                write_file(dir, &item.path, ctx.field(&f.field_path)?.as_bytes(), mode)?;
            }
        }
    }
    if let Some(p) = &v.projected {
        for src in p.sources.iter().flatten() {
            if let Some(s) = &src.secret {
                let keys = secret_keys(ctx, &s.name);
                write_items(dir, &keys, &s.items, p.default_mode, |k| {
                    ctx.secret_key(&s.name, k)
                })?;
            }
            if let Some(c) = &src.config_map {
                let keys = config_map_keys(ctx, &c.name);
                write_items(dir, &keys, &c.items, p.default_mode, |k| {
                    ctx.config_map_key(&c.name, k).map(String::into_bytes)
                })?;
            }
            if let Some(d) = &src.downward_api {
                for item in d.items.iter().flatten() {
                    if let Some(f) = &item.field_ref {
                        let mode = item.mode.or(p.default_mode);
                        write_file(dir, &item.path, ctx.field(&f.field_path)?.as_bytes(), mode)?;
                    }
                }
            }
            // serviceAccountToken and clusterTrustBundle sources: no Multigres container reads them.
        }
    }
    Ok(())
}

fn secret_keys(ctx: &PodContext, name: &str) -> Vec<String> {
    let s = ctx.secrets.get(name);
    let data = s
        .and_then(|s| s.data.as_ref())
        .into_iter()
        .flat_map(|d| d.keys());
    let strings = s
        .and_then(|s| s.string_data.as_ref())
        .into_iter()
        .flat_map(|d| d.keys());
    data.chain(strings).cloned().collect()
}

fn config_map_keys(ctx: &PodContext, name: &str) -> Vec<String> {
    ctx.config_maps
        .get(name)
        .and_then(|c| c.data.as_ref())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

/// `items` when given (key -> path, mode), else every key as a file of its own name.
fn write_items(
    dir: &Path,
    keys: &[String],
    items: &Option<Vec<KeyToPath>>,
    default_mode: Option<i32>,
    value: impl Fn(&str) -> Result<Vec<u8>>,
) -> Result<()> {
    match items {
        Some(items) => {
            for i in items {
                write_file(dir, &i.path, &value(&i.key)?, i.mode.or(default_mode))?;
            }
        }
        None => {
            for k in keys {
                write_file(dir, k, &value(k)?, default_mode)?;
            }
        }
    }
    Ok(())
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8], mode: Option<i32>) -> Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, bytes)?;
    let mode = mode.unwrap_or(DEFAULT_MODE) as u32;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let p = entry?.path();
            // A claim's folder may already hold postgres' data from an earlier pod: leave it.
            if !p.is_symlink() {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))?;
                if p.is_dir() && !p.join("PG_VERSION").exists() {
                    chown_tree(&p, uid, gid)?;
                }
            }
        }
    }
    Ok(())
}

/// The binds of one container: each volumeMount at its mount path (`subPath` inside the volume).
pub fn mounts(
    mounts: &Option<Vec<VolumeMount>>,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Bind>> {
    let mut out = Vec::new();
    for m in mounts.iter().flatten() {
        let Some(dir) = volumes.get(&m.name) else {
            bail!("volumeMount {} names no volume of the pod", m.name);
        };
        let host = match m.sub_path.as_deref() {
            Some(sub) if !sub.is_empty() => dir.join(sub),
            _ => dir.clone(),
        };
        if !host.exists() {
            std::fs::create_dir_all(&host)?;
        }
        out.push(Bind {
            host,
            target: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{PodSpec, Secret, SecretVolumeSource};
    use kube::api::ObjectMeta;

    use super::*;

    #[test]
    fn a_secret_volume_renders_its_items_with_their_modes() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("tls".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                ("tls.key".to_string(), ByteString(b"KEY".to_vec())),
                ("tls.crt".to_string(), ByteString(b"CRT".to_vec())),
            ])),
            ..Default::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(vec![Volume {
                    name: "certs".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some("tls".into()),
                        items: Some(vec![KeyToPath {
                            key: "tls.key".into(),
                            path: "sub/server.key".into(),
                            mode: Some(0o600),
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let secrets = BTreeMap::from([("tls".to_string(), secret)]);
        let config_maps = BTreeMap::new();
        let ctx = PodContext {
            pod: &pod,
            ip: std::net::Ipv4Addr::LOCALHOST,
            secrets: &secrets,
            config_maps: &config_maps,
        };
        let work = tempfile::tempdir().unwrap();
        let uid = unsafe { libc::getuid() };
        let gid = unsafe { libc::getgid() };
        let dirs = materialize(&ctx, work.path(), uid, gid).unwrap();
        let key = dirs["certs"].join("sub/server.key");
        assert_eq!(std::fs::read(&key).unwrap(), b"KEY");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dirs["certs"].join("tls.crt").exists(), "items select keys");
    }
}
