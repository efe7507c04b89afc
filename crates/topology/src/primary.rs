//! Reading a shard's primary out of Pooler records, failing closed.
//!
//! A pooler's role is `routing_state.role`; the deprecated `type` is read only for a record that
//! carries no `routing_state`. A primary serves only while its serving status is exactly SERVING
//! (DRAINING and DISABLED do not serve) and its lifecycle has not moved on to stopping, shutdown
//! or quarantine. When several records claim PRIMARY for one shard (a failover in flight, or a
//! stale record of a pod that died), [`shard_primary`] says so instead of picking one.

use crate::pb::{PoolerLifecycleStatus, PoolerServingStatus, PoolerType, RoutingRole};
use crate::{MultiPooler, PoolerRecord, ShardKey};

/// A pooler's role, as the operator reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolerRole {
    /// Claims to be the writable primary of its shard.
    Primary,
    Replica,
    /// Not established yet, shut down, or a value this operator does not know.
    Unknown,
}

/// The role of `pooler`: `routing_state.role`, or the deprecated `type` when the record has no
/// `routing_state` (a multipooler older than the field). A shut-down multipooler publishes no
/// `routing_state` and `type` UNKNOWN, so it reads as [`PoolerRole::Unknown`] either way.
pub fn pooler_role(pooler: &MultiPooler) -> PoolerRole {
    match &pooler.routing_state {
        Some(state) => match RoutingRole::try_from(state.role) {
            Ok(RoutingRole::Primary) => PoolerRole::Primary,
            Ok(RoutingRole::Replica) => PoolerRole::Replica,
            Ok(RoutingRole::Unknown) | Err(_) => PoolerRole::Unknown,
        },
        None => {
            #[allow(deprecated)] // the fallback for records without routing_state
            let legacy = pooler.r#type;
            match PoolerType::try_from(legacy) {
                Ok(PoolerType::Primary) => PoolerRole::Primary,
                Ok(PoolerType::Replica) => PoolerRole::Replica,
                _ => PoolerRole::Unknown,
            }
        }
    }
}

/// The lifecycle status, or `None` for a value this operator does not know.
pub fn pooler_lifecycle(pooler: &MultiPooler) -> Option<PoolerLifecycleStatus> {
    let raw = pooler.lifecycle_status.as_ref().map_or(0, |l| l.status);
    PoolerLifecycleStatus::try_from(raw).ok()
}

/// True only for serving status SERVING. Compared on the raw value: prost's getter maps unknown
/// values (such as the retired 2 and 3) to the default, which is SERVING.
pub fn is_serving(pooler: &MultiPooler) -> bool {
    pooler.serving_status == PoolerServingStatus::Serving as i32
}

/// Whether the lifecycle still lets a serving pooler count: starting, active, or unset (records
/// older than the field). Stopping, shut down, quarantined and unknown values do not.
fn lifecycle_may_serve(pooler: &MultiPooler) -> bool {
    matches!(
        pooler_lifecycle(pooler),
        Some(
            PoolerLifecycleStatus::LifecycleUnknown
                | PoolerLifecycleStatus::LifecycleStarting
                | PoolerLifecycleStatus::LifecycleActive
        )
    )
}

/// True when `pooler` claims PRIMARY, serves (SERVING) and its lifecycle lets it.
pub fn is_serving_primary(pooler: &MultiPooler) -> bool {
    pooler_role(pooler) == PoolerRole::Primary && is_serving(pooler) && lifecycle_may_serve(pooler)
}

/// What the records of one shard say about its primary.
#[derive(Debug, PartialEq)]
pub enum ShardPrimary<'a> {
    /// No record claims PRIMARY.
    None,
    /// Exactly one record claims PRIMARY; whether it serves is [`PoolerRecord::is_serving_primary`].
    One(&'a PoolerRecord),
    /// Several records claim PRIMARY: the primary is ambiguous and must be treated as unknown.
    Conflict(Vec<&'a PoolerRecord>),
}

impl<'a> ShardPrimary<'a> {
    /// The one serving primary, if there is exactly one claimant and it serves.
    pub fn serving(&self) -> Option<&'a PoolerRecord> {
        match self {
            ShardPrimary::One(record) if record.is_serving_primary() => Some(record),
            _ => None,
        }
    }
}

/// The records among `records` that belong to `shard` (same database, table group and shard).
pub fn of_shard<'a>(
    records: impl IntoIterator<Item = &'a PoolerRecord>,
    shard: &'a ShardKey,
) -> impl Iterator<Item = &'a PoolerRecord> {
    records
        .into_iter()
        .filter(move |r| r.pooler.shard_key.as_ref() == Some(shard))
}

/// The primary of `shard` among `records` (which may span several cells and shards).
pub fn shard_primary<'a>(
    records: impl IntoIterator<Item = &'a PoolerRecord>,
    shard: &'a ShardKey,
) -> ShardPrimary<'a> {
    let mut claimants: Vec<&PoolerRecord> = of_shard(records, shard)
        .filter(|r| r.role() == PoolerRole::Primary)
        .collect();
    match claimants.len() {
        0 => ShardPrimary::None,
        1 => ShardPrimary::One(claimants.remove(0)),
        _ => ShardPrimary::Conflict(claimants),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Id;
    use crate::pb::id::ComponentType;
    use crate::pb::{PoolerLifecycle, RoutingState, RuleNumber};

    fn shard() -> ShardKey {
        ShardKey {
            database: "postgres".into(),
            table_group: "default".into(),
            shard: "0-inf".into(),
        }
    }

    fn record(name: &str, role: RoutingRole, serving: PoolerServingStatus) -> PoolerRecord {
        PoolerRecord {
            key: format!("/c/poolers/multipooler-z1-{name}/Pooler"),
            mod_revision: 1,
            pooler: MultiPooler {
                id: Some(Id {
                    component: ComponentType::Multipooler.into(),
                    cell: "z1".into(),
                    name: name.into(),
                }),
                shard_key: Some(shard()),
                serving_status: serving.into(),
                lifecycle_status: Some(PoolerLifecycle {
                    status: PoolerLifecycleStatus::LifecycleActive.into(),
                    ..Default::default()
                }),
                routing_state: Some(RoutingState {
                    role: role.into(),
                    rule: (role == RoutingRole::Primary).then_some(RuleNumber {
                        coordinator_term: 1,
                        leader_subterm: 0,
                    }),
                }),
                ..Default::default()
            },
        }
    }

    use PoolerServingStatus::{Disabled, Draining, Serving};
    use RoutingRole::{Primary, Replica};

    #[test]
    fn only_a_serving_primary_serves() {
        assert!(record("p", Primary, Serving).is_serving_primary());
        assert!(!record("p", Primary, Draining).is_serving_primary());
        assert!(!record("p", Primary, Disabled).is_serving_primary());
        assert!(!record("p", Replica, Serving).is_serving_primary());
        let mut retired = record("p", Primary, Serving);
        retired.pooler.serving_status = 2; // once BACKUP: unknown now, so not serving
        assert!(!retired.is_serving_primary());
    }

    #[test]
    fn a_primary_going_away_does_not_serve() {
        for (status, serves) in [
            (PoolerLifecycleStatus::LifecycleUnknown, true),
            (PoolerLifecycleStatus::LifecycleStarting, true),
            (PoolerLifecycleStatus::LifecycleActive, true),
            (PoolerLifecycleStatus::LifecycleStopping, false),
            (PoolerLifecycleStatus::LifecycleShutdown, false),
            (PoolerLifecycleStatus::LifecycleQuarantined, false),
        ] {
            let mut r = record("p", Primary, Serving);
            r.pooler.lifecycle_status.as_mut().unwrap().status = status.into();
            assert_eq!(r.is_serving_primary(), serves, "{status:?}");
            assert_eq!(r.lifecycle(), Some(status));
        }
        let mut r = record("p", Primary, Serving);
        r.pooler.lifecycle_status.as_mut().unwrap().status = 99;
        assert!(!r.is_serving_primary());
        assert_eq!(r.lifecycle(), None);
    }

    #[test]
    #[allow(deprecated)]
    fn routing_state_wins_over_the_deprecated_type() {
        let mut r = record("p", Replica, Serving);
        r.pooler.r#type = PoolerType::Primary.into();
        assert_eq!(r.role(), PoolerRole::Replica);
        // Without routing_state (an older multipooler), the type is read.
        r.pooler.routing_state = None;
        assert_eq!(r.role(), PoolerRole::Primary);
        assert!(r.is_serving_primary());
        r.pooler.r#type = PoolerType::Unknown.into();
        assert_eq!(r.role(), PoolerRole::Unknown);
        // An unknown routing role is not a primary, whatever the type says.
        r.pooler.r#type = PoolerType::Primary.into();
        r.pooler.routing_state = Some(RoutingState {
            role: 7,
            rule: None,
        });
        assert_eq!(r.role(), PoolerRole::Unknown);
    }

    #[test]
    fn one_none_or_conflict() {
        let shard = shard();
        let records = vec![
            record("a", Primary, Serving),
            record("b", Replica, Serving),
            record("c", Replica, Draining),
        ];
        let found = shard_primary(&records, &shard);
        assert_eq!(found, ShardPrimary::One(&records[0]));
        assert_eq!(found.serving().map(|r| r.name()), Some("a"));

        assert_eq!(shard_primary(&records[1..], &shard), ShardPrimary::None);

        let draining = vec![
            record("a", Primary, Draining),
            record("b", Replica, Serving),
        ];
        let found = shard_primary(&draining, &shard);
        assert_eq!(found, ShardPrimary::One(&draining[0]));
        assert_eq!(found.serving(), None);

        let two = vec![
            record("a", Primary, Serving),
            record("b", Primary, Serving),
            record("c", Replica, Serving),
        ];
        match shard_primary(&two, &shard) {
            ShardPrimary::Conflict(claimants) => {
                let names: Vec<_> = claimants.iter().map(|r| r.name()).collect();
                assert_eq!(names, ["a", "b"]);
            }
            other => panic!("want a conflict, got {other:?}"),
        }
        assert_eq!(shard_primary(&two, &shard).serving(), None);
    }

    #[test]
    fn other_shards_do_not_count() {
        let mut other = record("x", Primary, Serving);
        other.pooler.shard_key.as_mut().unwrap().shard = "0".into();
        let records = vec![other, record("a", Primary, Serving)];
        assert_eq!(
            shard_primary(&records, &shard()),
            ShardPrimary::One(&records[1])
        );
    }
}
