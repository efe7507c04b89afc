//! `kubectl multigres switchover`: asks the shard controller for one planned switchover of a
//! Shard's primary by setting the switchover annotation, then waits on a watch until the Shard's
//! status records what became of that request. The plugin never talks to multiadmin itself: the
//! controller owns the safe order (docs/shard-controller.md, "Requested switchovers").

use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use multigres_api::{LastSwitchover, Shard, SwitchoverResult, labels};
use serde::Serialize;

/// The annotation value of a request made at `at`, to `target` when given.
pub fn request_value(at: &str, target: Option<&str>) -> String {
    match target {
        Some(pod) => format!("{at},{pod}"),
        None => at.to_string(),
    }
}

/// The merge patch that makes the request.
pub fn request(value: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {labels::SWITCHOVER_REQUESTED: value}}})
}

/// The Shard's record of the request made at `at` (to `target`), once it is final.
pub fn outcome<'a>(shard: &'a Shard, at: &str, target: Option<&str>) -> Option<&'a LastSwitchover> {
    let last = shard.status.as_ref()?.last_switchover.as_ref()?;
    (last.requested_at == at && last.target.as_deref() == target && last.result.is_final())
        .then_some(last)
}

/// What `switchover -o json` prints.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub namespace: String,
    pub shard: String,
    #[serde(flatten)]
    pub outcome: LastSwitchover,
}

/// The outcome for a terminal.
pub fn render(report: &Report) -> String {
    let o = &report.outcome;
    let shard = format!("{}/{}", report.namespace, report.shard);
    let arrow = format!(
        "{} → {}",
        o.from.as_deref().unwrap_or("?"),
        o.to.as_deref().unwrap_or("?")
    );
    match o.result {
        SwitchoverResult::Succeeded => {
            format!("Shard {shard}: switched over {arrow}\n  {}\n", o.message)
        }
        SwitchoverResult::Refused => format!("Shard {shard}: switchover refused: {}\n", o.message),
        SwitchoverResult::Failed => format!("Shard {shard}: switchover failed: {}\n", o.message),
        SwitchoverResult::InProgress => {
            format!("Shard {shard}: switchover in progress: {}\n", o.message)
        }
    }
}

/// Requests the switchover of `shard` (a Shard of `cluster`), waits up to `timeout` for its outcome.
pub async fn run(
    client: &Client,
    namespace: &str,
    cluster: &str,
    shard: &str,
    target: Option<&str>,
    at: &str,
    timeout: Duration,
) -> Result<Report> {
    let api: Api<Shard> = Api::namespaced(client.clone(), namespace);
    let found = api
        .get(shard)
        .await
        .with_context(|| format!("Shard {namespace}/{shard}"))?;
    if found.labels().get(labels::CLUSTER).map(String::as_str) != Some(cluster) {
        bail!("Shard {namespace}/{shard} is not a Shard of MultigresCluster {cluster}");
    }
    let value = request_value(at, target);
    api.patch(
        shard,
        &PatchParams::default(),
        &Patch::Merge(&request(&value)),
    )
    .await
    .with_context(|| format!("annotating Shard {namespace}/{shard}"))?;
    let done = tokio::time::timeout(
        timeout,
        await_condition(api, shard, |s: Option<&Shard>| {
            s.is_some_and(|s| outcome(s, at, target).is_some())
        }),
    )
    .await;
    let shard_now = match done {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => bail!("Shard {namespace}/{shard} was deleted"),
        Ok(Err(e)) => return Err(e).context(format!("watching Shard {namespace}/{shard}")),
        Err(_) => bail!(
            "no outcome for the switchover of Shard {namespace}/{shard} within {}s; the request \
             stands (annotation {}={value}): follow it with `kubectl multigres status`",
            timeout.as_secs(),
            labels::SWITCHOVER_REQUESTED
        ),
    };
    let outcome = outcome(&shard_now, at, target)
        .cloned()
        .expect("the condition held");
    Ok(Report {
        namespace: namespace.to_string(),
        shard: shard.to_string(),
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use multigres_api::ShardStatus;

    fn shard_with(last: Option<LastSwitchover>) -> Shard {
        let cluster = multigres_dataplane_sim::testing::sample_cluster("ns", "c");
        let mut shard = multigres_dataplane_sim::testing::children(&cluster)
            .shards
            .remove(0);
        shard.status = Some(ShardStatus {
            last_switchover: last,
            ..Default::default()
        });
        shard
    }

    fn last(at: &str, target: Option<&str>, result: SwitchoverResult) -> LastSwitchover {
        LastSwitchover {
            requested_at: at.into(),
            target: target.map(String::from),
            from: Some("p-0".into()),
            to: Some("p-1".into()),
            result,
            message: "the primary moved from p-0 to p-1".into(),
            time: None,
        }
    }

    #[test]
    fn the_request_is_the_annotation_with_an_optional_target() {
        assert_eq!(
            request(&request_value("t1", Some("p-1"))),
            serde_json::json!({"metadata": {"annotations": {"multigres.com/switchover-requested": "t1,p-1"}}})
        );
        assert_eq!(request_value("t1", None), "t1");
    }

    #[test]
    fn only_a_final_record_of_this_very_request_is_its_outcome() {
        use SwitchoverResult::*;
        let s = shard_with(Some(last("t1", None, Succeeded)));
        assert!(outcome(&s, "t1", None).is_some());
        assert!(outcome(&s, "t0", None).is_none(), "an earlier request");
        assert!(outcome(&s, "t1", Some("p-1")).is_none(), "another target");
        let s = shard_with(Some(last("t1", None, InProgress)));
        assert!(outcome(&s, "t1", None).is_none());
        assert!(outcome(&shard_with(None), "t1", None).is_none());
    }

    #[test]
    fn the_outcome_reads_from_to() {
        let report = Report {
            namespace: "ns".into(),
            shard: "s".into(),
            outcome: last("t1", None, SwitchoverResult::Succeeded),
        };
        assert_eq!(
            render(&report),
            "Shard ns/s: switched over p-0 → p-1\n  the primary moved from p-0 to p-1\n"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["from"], "p-0");
        assert_eq!(json["to"], "p-1");
        assert_eq!(json["result"], "Succeeded");
        assert_eq!(json["shard"], "s");
    }
}
