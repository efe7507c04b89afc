//! Which pod is the primary, from the topology: unknown when it cannot be read, when several records
//! claim it, when its record traces to none of this shard's pods, or when there is no record while
//! replica pods exist (mid-election or not bootstrapped yet).

use super::*;
use crate::topology::Freshness;

/// What the topology said, and what the plan may rely on.
pub(super) struct PrimaryView {
    /// The topology's answer, None when it could not be read.
    pub record: Option<TopologyPrimary>,
    pub primary: Primary,
    /// Where the primary may be: the cells of the spec's replica pools, and of every replica-pool
    /// pod that still exists (a pool removed from the spec may still hold it).
    pub cells: BTreeSet<String>,
    pub pod_names: Vec<String>,
    /// Every record came from an in-sync topology watch: a change wakes the Shard.
    pub watched: bool,
}

impl PrimaryView {
    /// Whether another pod than `name` is the primary right now, and stays it: read twice,
    /// [`SETTLE`] apart, naming the same other pod both times. A handover under way (a failover
    /// or a switchover someone else asked for) may have chosen `name` and not yet written it to the
    /// topology; the second read sees it, or sees the primary change, and the pod stays.
    pub async fn elsewhere_now(&self, shard: &Shard, ctx: &Ctx, name: &str) -> bool {
        let Some(first) = self.primary_now(shard, ctx).await else {
            return false;
        };
        if first == name {
            return false;
        }
        tokio::time::sleep(SETTLE).await;
        self.primary_now(shard, ctx).await.as_deref() == Some(first.as_str())
    }

    /// The pod the topology names the one primary now, if it does.
    async fn primary_now(&self, shard: &Shard, ctx: &Ctx) -> Option<String> {
        let now = ctx
            .state
            .topology
            .primary(shard, &self.cells, &self.pod_names, Freshness::Server)
            .await;
        match now {
            Ok((TopologyPrimary::One(r), _)) => r.pod,
            _ => None,
        }
    }
}

/// Between the two reads of [`PrimaryView::elsewhere_now`]: longer than a handover takes to reach
/// the topology once chosen, short beside a pod's replacement.
const SETTLE: Duration = Duration::from_millis(500);

pub(super) async fn read(
    shard: &Shard,
    ctx: &Ctx,
    key: &str,
    owned_pods: &[Arc<Pod>],
) -> PrimaryView {
    let pod_names: Vec<String> = owned_pods.iter().map(|p| p.name_any()).collect();
    let replica_pods: Vec<&Arc<Pod>> = owned_pods
        .iter()
        .filter(|p| {
            p.labels().get(labels::POOL_TYPE).map(String::as_str)
                != Some(PoolType::ReadOnly.as_str())
        })
        .collect();
    let cells: BTreeSet<String> = shard
        .spec
        .pools
        .iter()
        .filter(|p| p.pool_type == PoolType::Replica)
        .map(|p| p.cell.clone())
        .chain(
            replica_pods
                .iter()
                .filter_map(|p| p.labels().get(labels::CELL).cloned()),
        )
        .collect();
    let read = ctx
        .state
        .topology
        .primary(shard, &cells, &pod_names, Freshness::Watched)
        .await;
    let (record, watched) = match read {
        Ok((found, watched)) => (Some(found), watched),
        Err(error) => {
            tracing::warn!(shard = key, %error, "topology unreachable; the primary is unknown");
            (None, false)
        }
    };
    let primary = match &record {
        // Any replica-pool pod may become (or be) the primary, so nothing of theirs moves.
        Some(TopologyPrimary::None) if !replica_pods.is_empty() => {
            tracing::info!(
                shard = key,
                "no PRIMARY record while replica pods exist; the primary is unknown"
            );
            Primary::Unknown
        }
        Some(TopologyPrimary::None) => Primary::Known(None),
        Some(TopologyPrimary::One(p)) => match &p.pod {
            Some(pod) => Primary::Known(Some(pod.clone())),
            None => {
                tracing::warn!(shard = key, cell = %p.cell, "the PRIMARY record is none of this shard's pods; the primary is unknown");
                Primary::Unknown
            }
        },
        Some(TopologyPrimary::Conflict(keys)) => {
            tracing::warn!(
                shard = key,
                ?keys,
                "several pooler records claim PRIMARY; the primary is unknown"
            );
            Primary::Unknown
        }
        None => Primary::Unknown,
    };
    PrimaryView {
        record,
        primary,
        cells,
        pod_names,
        watched,
    }
}
