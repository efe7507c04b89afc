//! Secrets a controller generates once and never rewrites: whoever holds data encrypted or
//! authenticated with them must keep seeing the same bytes.

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

/// Creates `secret` unless a Secret of that name exists (made by anyone, or by a racing replica).
/// Reads only its metadata, so a reconcile that finds it writes nothing. `make` runs only when the
/// Secret is missing, so keys and passwords are generated only when used. Returns whether it
/// created the Secret.
pub async fn create_once<E: From<kube::Error>>(
    api: &Api<Secret>,
    name: &str,
    make: impl FnOnce() -> Result<Secret, E>,
) -> Result<bool, E> {
    if api.get_metadata_opt(name).await?.is_some() {
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
