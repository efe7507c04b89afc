//! Compare-and-swap access to topology records over etcd.
//!
//! Writes follow multigres' own etcd topo (go/common/topoclient/etcdtopo/file.go): create is a
//! txn `version(key) == 0 -> put`, update is a txn `mod_revision(key) == read_rev -> put`, so
//! the operator never overwrites a record that changed since it read it.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    KvClient, TlsOptions, Txn, TxnOp,
};
use prost::Message;
use tracing::debug;

use crate::{AddressMapping, Result, TopoError};

/// A short default: the operator reconciles again later, so waiting long on a dead server only
/// stalls its work queue.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`TopoClient::create_or_update`] re-reads after losing a race before giving up.
const MAX_CAS_ATTEMPTS: u32 = 5;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The key did not exist and was created.
    Created,
    /// The key existed with a different value and was replaced.
    Updated,
    /// The key already held the desired value; nothing was written.
    Unchanged,
}

/// A stored key with its undecoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// Full etcd key.
    pub key: String,
    /// Stored bytes.
    pub value: Vec<u8>,
    /// Revision of the last modification, for compare-and-swap.
    pub mod_revision: i64,
}

/// What the operator trusts in, and presents to, a topology server that speaks TLS: the topology
/// CA and a client certificate it signed (docs/security.md, "Topology").
#[derive(Clone)]
pub struct ClientTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

/// The name a TLS topology server's certificate is checked against: the host the address names,
/// before any address mapping, as Multigres' own etcd client does.
pub fn server_name(address: &str) -> &str {
    let address = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .unwrap_or(address);
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// A client for one topology server (global or cell). Cheap to clone.
#[derive(Clone)]
pub struct TopoClient {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for TopoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopoClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TopoClient {
    /// Builds a client for `addresses` (each `host:port`, optionally with `http://`), rewritten
    /// through `mapping`, over TLS with `tls` (then a `http://` address is refused). Connections
    /// are made lazily, so this succeeds even while the server is down; every later call is
    /// bounded by `timeout` and fails with [`TopoError::Unreachable`] rather than hanging.
    pub async fn connect(
        addresses: &[String],
        mapping: &AddressMapping,
        timeout: Duration,
        tls: Option<&ClientTls>,
    ) -> Result<Self> {
        if addresses.is_empty() {
            return Err(TopoError::Invalid("no topology server addresses".into()));
        }
        if timeout.is_zero() {
            return Err(TopoError::Invalid(
                "topology timeout must be non-zero".into(),
            ));
        }
        for address in addresses {
            mapping.check(address)?;
        }
        let endpoints: Vec<String> = addresses.iter().map(|a| mapping.apply(a)).collect();
        debug!(
            ?endpoints,
            tls = tls.is_some(),
            "connecting to topology server"
        );
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            // Detects a server that vanished without closing the connection.
            .with_keep_alive(Duration::from_secs(10), timeout);
        if let Some(tls) = tls {
            if let Some(plain) = addresses.iter().find(|a| a.starts_with("http://")) {
                return Err(TopoError::Invalid(format!(
                    "topology address {plain} is plaintext (http://) but the topology speaks TLS"
                )));
            }
            options = options.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                    .domain_name(server_name(&addresses[0])),
            );
        }
        let client = bounded(timeout, Client::connect(endpoints, Some(options))).await?;
        Ok(Self { client, timeout })
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn kv(&self) -> KvClient {
        self.client.kv_client()
    }

    /// Reads and decodes `key`; `None` if absent. Also returns its mod revision.
    pub async fn get<M: Message + Default>(&self, key: &str) -> Result<Option<(M, i64)>> {
        match self.get_raw(key).await? {
            None => Ok(None),
            Some(entry) => Ok(Some((
                decode(&entry.key, &entry.value)?,
                entry.mod_revision,
            ))),
        }
    }

    /// Reads `key` without decoding it.
    pub async fn get_raw(&self, key: &str) -> Result<Option<RawEntry>> {
        check_key(key)?;
        let resp = bounded(self.timeout, self.kv().get(key, None)).await?;
        Ok(resp.kvs().first().map(|kv| RawEntry {
            key: key.to_owned(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        }))
    }

    /// Makes `key` hold `desired`. Reads first and writes nothing if the stored value already
    /// decodes to `desired`, so steady-state reconciles don't bump etcd revisions or wake
    /// watchers. Lost races are retried a few times, then reported as [`TopoError::Conflict`].
    ///
    /// A stored value that does not decode as `M` is reported as [`TopoError::Decode`] rather
    /// than overwritten: it may have been written by a newer multigres. Fields unknown to this
    /// schema are dropped when an update is needed (prost does not keep unknown fields).
    pub async fn create_or_update<M>(&self, key: &str, desired: &M) -> Result<WriteOutcome>
    where
        M: Message + PartialEq + Default,
    {
        let bytes = desired.encode_to_vec();
        for attempt in 1..=MAX_CAS_ATTEMPTS {
            match self.get_raw(key).await? {
                None => {
                    if self.create_raw(key, bytes.clone()).await? {
                        return Ok(WriteOutcome::Created);
                    }
                }
                Some(entry) => {
                    if entry.value == bytes || decode::<M>(key, &entry.value)? == *desired {
                        return Ok(WriteOutcome::Unchanged);
                    }
                    if self
                        .put_if_revision(key, bytes.clone(), entry.mod_revision)
                        .await?
                    {
                        return Ok(WriteOutcome::Updated);
                    }
                }
            }
            debug!(key, attempt, "topology write lost a race; re-reading");
            tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
        }
        Err(TopoError::Conflict {
            key: key.to_owned(),
        })
    }

    /// Writes `value` only if `key` still has `mod_revision`; [`TopoError::Conflict`] otherwise
    /// (including when the key was deleted). Returns the new revision.
    pub async fn update_if_unchanged<M: Message>(
        &self,
        key: &str,
        value: &M,
        mod_revision: i64,
    ) -> Result<i64> {
        check_key(key)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::put(key, value.encode_to_vec(), None)]);
        let resp = bounded(self.timeout, self.kv().txn(txn)).await?;
        if !resp.succeeded() {
            return Err(TopoError::Conflict {
                key: key.to_owned(),
            });
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    /// Deletes `key` only if it still has `mod_revision`. Returns `false` when it changed or is
    /// already gone, so a record rewritten since it was read is never lost.
    pub async fn delete_if_unchanged(&self, key: &str, mod_revision: i64) -> Result<bool> {
        check_key(key)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::delete(key, None)]);
        let resp = bounded(self.timeout, self.kv().txn(txn)).await?;
        Ok(resp.succeeded())
    }

    /// Deletes `key` unconditionally. Returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let resp = bounded(self.timeout, self.kv().delete(key, None)).await?;
        Ok(resp.deleted() > 0)
    }

    /// Deletes every key under `prefix`. Returns how many were removed.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<i64> {
        check_key(prefix)?;
        let opts = DeleteOptions::new().with_prefix();
        let resp = bounded(self.timeout, self.kv().delete(prefix, Some(opts))).await?;
        Ok(resp.deleted())
    }

    /// Reads and decodes every key under `prefix`, sorted by key. Fails on the first value that
    /// does not decode; use [`TopoClient::list_prefix_raw`] to tolerate foreign values.
    pub async fn list_prefix<M: Message + Default>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, M)>> {
        let mut out = Vec::new();
        for entry in self.list_prefix_raw(prefix).await? {
            let value = decode(&entry.key, &entry.value)?;
            out.push((entry.key, value));
        }
        Ok(out)
    }

    /// Reads every key under `prefix` without decoding, sorted by key. An empty prefix is
    /// refused: it would scan the whole etcd keyspace, which may be shared with other users.
    pub async fn list_prefix_raw(&self, prefix: &str) -> Result<Vec<RawEntry>> {
        Ok(self.list_prefix_raw_at(prefix).await?.0)
    }

    /// [`TopoClient::list_prefix_raw`] with the store revision it was read at, from which a watch
    /// continues without a gap.
    pub async fn list_prefix_raw_at(&self, prefix: &str) -> Result<(Vec<RawEntry>, i64)> {
        check_key(prefix)?;
        let opts = GetOptions::new().with_prefix();
        let resp = bounded(self.timeout, self.kv().get(prefix, Some(opts))).await?;
        let revision = resp
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| TopoError::Server("response without header".into()))?;
        let mut out = Vec::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            let key = kv
                .key_str()
                .map_err(|e| TopoError::Server(format!("non-UTF-8 key under {prefix}: {e}")))?;
            out.push(RawEntry {
                key: key.to_owned(),
                value: kv.value().to_vec(),
                mod_revision: kv.mod_revision(),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((out, revision))
    }

    /// Every change under `prefix` after `revision`, with the value before each change. The
    /// stream ends (or fails) when the server goes away or compacts past `revision`.
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        revision: i64,
    ) -> Result<etcd_client::WatchStream> {
        check_key(prefix)?;
        let opts = etcd_client::WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
            .with_prev_key();
        let mut watch = self.client.watch_client();
        bounded(self.timeout, watch.watch(prefix, Some(opts))).await
    }

    /// The store's current revision; it moves on every write, which lets tests prove that a
    /// no-op reconcile wrote nothing.
    pub async fn revision(&self) -> Result<i64> {
        // A count-only read of one key is the cheapest request that carries a header.
        let opts = GetOptions::new().with_count_only();
        let resp = bounded(self.timeout, self.kv().get("\0", Some(opts))).await?;
        resp.header()
            .map(|h| h.revision())
            .ok_or_else(|| TopoError::Server("response without header".into()))
    }

    /// Creates `key` only if it does not exist (etcd `version == 0`). Returns `false` if it does.
    pub(crate) async fn create_raw(&self, key: &str, value: Vec<u8>) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        Ok(bounded(self.timeout, self.kv().txn(txn)).await?.succeeded())
    }

    async fn put_if_revision(&self, key: &str, value: Vec<u8>, mod_revision: i64) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::put(key, value, None)]);
        Ok(bounded(self.timeout, self.kv().txn(txn)).await?.succeeded())
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(TopoError::Invalid("empty topology key".into()));
    }
    Ok(())
}

pub(crate) fn decode<M: Message + Default>(key: &str, value: &[u8]) -> Result<M> {
    M::decode(value).map_err(|source| TopoError::Decode {
        key: key.to_owned(),
        source,
    })
}

/// Runs an etcd call under a hard deadline on top of the client's own timeouts: the channel's
/// connect timeout does not cover every stall (e.g. a peer that accepts TCP but never speaks
/// HTTP/2), and the operator must never hang on the topology.
async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(res) => res.map_err(classify),
        Err(_) => Err(TopoError::Unreachable(format!(
            "no answer within {timeout:?}"
        ))),
    }
}

fn classify(err: etcd_client::Error) -> TopoError {
    use etcd_client::Error as E;
    use tonic::Code;
    match err {
        E::TransportError(e) => TopoError::Unreachable(e.to_string()),
        E::IoError(e) => TopoError::Unreachable(e.to_string()),
        E::GRpcStatus(s) => match s.code() {
            // Connection failures surface as Unavailable/Unknown ("transport error"), timeouts
            // as DeadlineExceeded/Cancelled.
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                TopoError::Unreachable(format!("{}: {}", s.code(), s.message()))
            }
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                TopoError::Invalid(format!("{}: {}", s.code(), s.message()))
            }
            _ => TopoError::Server(format!("{}: {}", s.code(), s.message())),
        },
        E::InvalidArgs(_) | E::InvalidUri(_) | E::EndpointError(_) => {
            TopoError::Invalid(err.to_string())
        }
        other => TopoError::Server(other.to_string()),
    }
}
