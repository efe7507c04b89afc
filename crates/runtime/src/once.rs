//! Objects a controller creates once and never rewrites: generated Secrets (whoever holds data
//! encrypted or authenticated with them must keep seeing the same bytes) and content-addressed
//! ConfigMaps (a new content is a new name). Secrets are created without ever being read.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// How long a Secret seen to exist is taken to exist without asking again.
pub const SECRET_RECHECK: Duration = Duration::from_secs(300);

/// The Secrets a controller creates once and never reads. Whether one exists is asked by a dry-run
/// create, which answers 409 when it does: the controllers hold `create` on Secrets but no `get`,
/// so a stolen token of theirs reads no Secret (docs/security.md). [`Secrets::create_once`] takes
/// an answer "exists" for [`SECRET_RECHECK`], so a reconcile that changes nothing asks nothing;
/// [`Secrets::exists`] always asks (a deleted Secret that matters, e.g. credentials the data was
/// initialised with, is noticed at once).
#[derive(Debug, Default)]
pub struct Secrets {
    seen: Mutex<HashMap<String, Instant>>,
}

impl Secrets {
    /// Whether `namespace/name` exists now.
    pub async fn exists(
        &self,
        api: &Api<Secret>,
        namespace: &str,
        name: &str,
    ) -> Result<bool, kube::Error> {
        let key = format!("{namespace}/{name}");
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
        let exists = match api.create(&dry_run, &probe).await {
            Ok(_) => false,
            Err(kube::Error::Api(e)) if e.code == 409 => true,
            Err(e) => return Err(e),
        };
        self.record(key, exists);
        Ok(exists)
    }

    /// Creates the Secret `make` returns unless `namespace/name` exists; returns whether it did.
    /// `make` runs only when the Secret is missing, so keys and passwords are generated only when
    /// used.
    pub async fn create_once<E>(
        &self,
        api: &Api<Secret>,
        namespace: &str,
        name: &str,
        make: impl FnOnce() -> Result<Secret, E>,
    ) -> Result<bool, E>
    where
        E: From<kube::Error>,
    {
        if self.recently_seen(&format!("{namespace}/{name}"))
            || self.exists(api, namespace, name).await?
        {
            return Ok(false);
        }
        let secret = make()?;
        debug_assert_eq!(secret.name_any(), name);
        let created = match api.create(&PostParams::default(), &secret).await {
            Ok(_) => true,
            Err(kube::Error::Api(e)) if e.code == 409 => false,
            Err(e) => return Err(e.into()),
        };
        self.record(format!("{namespace}/{name}"), true);
        Ok(created)
    }

    /// [`Self::create_once`] of a Secret of certificates `make` issues for `owner` (in the owner's
    /// namespace); failures are the owner's reconcile errors. Returns whether it was created.
    pub async fn issue_once<K: Resource<DynamicType = ()>>(
        &self,
        client: &kube::Client,
        owner: &K,
        name: &str,
        make: impl FnOnce() -> Result<Secret, rcgen::Error>,
    ) -> Result<bool, crate::error::ChildError> {
        use crate::error::{ChildError, Failure};
        let ns = owner.meta().namespace.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        self.create_once(&api, &ns, name, || make().map_err(IssueError::Issue))
            .await
            .map_err(|e| match e {
                IssueError::Kube(e) => {
                    ChildError::kube(owner, format!("creating Secret {name}"), e)
                }
                IssueError::Issue(e) => ChildError::new(
                    owner,
                    Failure::Tls(format!("issuing certificates for Secret {name}: {e}")),
                ),
            })
    }

    fn recently_seen(&self, key: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(key)
            .is_some_and(|at| at.elapsed() < SECRET_RECHECK)
    }

    fn record(&self, key: String, exists: bool) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if exists {
            seen.insert(key, Instant::now());
        } else {
            seen.remove(&key);
        }
    }
}

/// Why [`Secrets::issue_once`] made no Secret.
enum IssueError {
    Kube(kube::Error),
    Issue(rcgen::Error),
}

impl From<kube::Error> for IssueError {
    fn from(e: kube::Error) -> Self {
        IssueError::Kube(e)
    }
}
