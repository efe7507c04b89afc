//! One condition type and one way to set it: `lastTransitionTime` moves only when the status really
//! changes, so a reconcile that changes nothing produces an identical status and no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// The desired state of one condition, without its transition time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Sets `update` in `conditions`, keeping the old transition time unless the status flips.
pub fn set(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if update.status { "True" } else { "False" }.to_string();
    let previous = conditions.iter().position(|c| c.type_ == update.type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: update.type_.to_string(),
        status,
        reason: update.reason,
        message: update.message,
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Whether `type_` is currently True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// A status that carries conditions.
pub trait Conditioned {
    fn conditions(&self) -> &[Condition];
}

macro_rules! conditioned {
    ($($status:ty),*) => {$(
        impl Conditioned for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
        }
    )*};
}

conditioned!(
    multigres_api::ShardStatus,
    multigres_api::TableGroupStatus,
    multigres_api::CellStatus,
    multigres_api::TopoServerStatus,
    multigres_api::MultigresClusterStatus
);

/// The conditions of an object's status, none before its first status.
pub fn of<S: Conditioned>(status: Option<&S>) -> &[Condition] {
    status.map_or(&[][..], Conditioned::conditions)
}

/// How `Available` moved from one status to the next: what the object's Event reports.
#[derive(Debug, PartialEq)]
pub enum AvailabilityTurn<'a> {
    Gained(&'a Condition),
    Lost(&'a Condition),
}

/// Whether `Available` turned between `before` and `after`. A condition that first appears False
/// (an object being built) is no turn; one that first appears True is.
pub fn availability_turned<'a>(
    before: &[Condition],
    after: &'a [Condition],
) -> Option<AvailabilityTurn<'a>> {
    let now = after.iter().find(|c| c.type_ == AVAILABLE)?;
    let was_available = is_true(before, AVAILABLE);
    match (was_available, now.status == "True") {
        (false, true) => Some(AvailabilityTurn::Gained(now)),
        (true, false) => Some(AvailabilityTurn::Lost(now)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available(status: bool, reason: &str) -> Vec<Condition> {
        let mut conditions = Vec::new();
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let update = ConditionUpdate::new(AVAILABLE, status, reason, "");
        set(&mut conditions, update, Some(1), now);
        conditions
    }

    #[test]
    fn availability_turns_only_when_available_flips_or_first_appears_true() {
        let (up, down) = (available(true, "Ready"), available(false, "NoPrimary"));
        let starting = available(false, "PodsNotReady");
        assert_eq!(availability_turned(&[], &starting), None, "being built");
        assert_eq!(availability_turned(&starting, &down), None, "still down");
        assert_eq!(availability_turned(&up, &up), None, "still up");
        assert_eq!(availability_turned(&up, &[]), None, "no condition yet");
        assert!(matches!(
            availability_turned(&starting, &up),
            Some(AvailabilityTurn::Gained(c)) if c.reason == "Ready"
        ));
        assert!(matches!(
            availability_turned(&[], &up),
            Some(AvailabilityTurn::Gained(_))
        ));
        assert!(matches!(
            availability_turned(&up, &down),
            Some(AvailabilityTurn::Lost(c)) if c.reason == "NoPrimary"
        ));
    }

    #[test]
    fn transition_time_moves_only_on_a_flip() {
        let t0: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2025-01-01T00:05:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            ConditionUpdate::new(AVAILABLE, false, "Starting", "0/3 ready"),
            Some(1),
            t0,
        );
        set(
            &mut conditions,
            ConditionUpdate::new(AVAILABLE, false, "Starting", "1/3 ready"),
            Some(1),
            t1,
        );
        assert_eq!(conditions[0].last_transition_time.0, t0);
        assert_eq!(conditions[0].message, "1/3 ready");
        set(
            &mut conditions,
            ConditionUpdate::new(AVAILABLE, true, "Ready", "3/3 ready"),
            Some(2),
            t1,
        );
        assert_eq!(conditions[0].last_transition_time.0, t1);
        assert!(is_true(&conditions, AVAILABLE));
    }
}
