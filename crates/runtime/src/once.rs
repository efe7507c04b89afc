//! Objects a controller creates once and never rewrites: generated Secrets (whoever holds data
//! encrypted or authenticated with them must keep seeing the same bytes) and content-addressed
//! ConfigMaps (a new content is a new name).

use std::fmt::Debug;

use kube::api::PostParams;
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
