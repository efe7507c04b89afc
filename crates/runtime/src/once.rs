//! Objects a controller creates once and never rewrites: generated Secrets (whoever holds data
//! encrypted or authenticated with them must keep seeing the same bytes) and content-addressed
//! ConfigMaps (a new content is a new name). Secrets are created without ever being read.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Creates the object `make` returns unless one named `name` exists (made by anyone, or by a
/// racing replica). Reads only its metadata, so a reconcile that finds it writes nothing. `make`
/// runs only when the object is missing, so keys and passwords are generated only when used.
/// Returns whether it created the object.
pub async fn create_once<K, E>(
    api: &Api<K>,
    name: &str,
    make: impl FnOnce() -> Result<K, E>,
) -> Result<bool, E>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    E: From<kube::Error>,
{
    if api.get_metadata_opt(name).await?.is_some() {
        return Ok(false);
    }
    let object = make()?;
    debug_assert_eq!(object.name_any(), name);
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether a Secret named `name` exists, found without reading it: a dry-run create of an empty
/// Secret answers 409 when one exists. The controllers may create Secrets but not `get` them, so a
/// stolen token of theirs reads no Secret (docs/security.md, docs/rbac.md). A dry run writes nothing.
pub async fn secret_exists(api: &Api<Secret>, name: &str) -> Result<bool, kube::Error> {
    let probe = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    };
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match api.create(&dry_run, &probe).await {
        Ok(_) => Ok(false),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(true),
        Err(e) => Err(e),
    }
}

/// [`create_once`] for Secrets, with only the `create` verb: existence is asked by
/// [`secret_exists`], never by a read.
pub async fn create_secret_once<E>(
    api: &Api<Secret>,
    name: &str,
    make: impl FnOnce() -> Result<Secret, E>,
) -> Result<bool, E>
where
    E: From<kube::Error>,
{
    if secret_exists(api, name).await? {
        return Ok(false);
    }
    let secret = make()?;
    debug_assert_eq!(secret.name_any(), name);
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}
