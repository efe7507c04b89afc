//! API requests per user from the API server's audit log (Metadata level, RequestReceived
//! omitted): one request is one `ResponseComplete` event, or for a watch its `ResponseStarted`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

/// The audit user of a controller running under its chart's ServiceAccount.
pub const SA_PREFIX: &str = "system:serviceaccount:multigres-system:";

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Requests {
    pub reads: u64,
    /// Writes other than Lease renewals.
    pub writes: u64,
    /// Writes to coordination.k8s.io Leases (leader election and partition membership).
    pub lease_writes: u64,
    /// Requests by verb, writes to Leases included.
    pub by_verb: BTreeMap<String, u64>,
    /// Writes by resource (`resource` or `resource/subresource`), Leases excluded.
    pub writes_by_resource: BTreeMap<String, u64>,
}

pub fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Where the log ends now, to count only what comes after.
pub fn offset(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// Requests per controller user (the ServiceAccount name without the prefix) between two offsets.
pub fn count(log: &Path, from: u64, to: u64) -> Result<BTreeMap<String, Requests>> {
    let mut f = std::fs::File::open(log)?;
    f.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    f.take(to.saturating_sub(from)).read_to_string(&mut text)?;
    let mut out: BTreeMap<String, Requests> = BTreeMap::new();
    for line in text.lines() {
        if let Some((user, verb, resource)) = parse(line) {
            let r = out.entry(user).or_default();
            *r.by_verb.entry(verb.clone()).or_default() += 1;
            if !is_write(&verb) {
                r.reads += 1;
            } else if resource == "leases" {
                r.lease_writes += 1;
            } else {
                r.writes += 1;
                *r.writes_by_resource.entry(resource).or_default() += 1;
            }
        }
    }
    Ok(out)
}

/// `(controller, verb, resource)` of one request by a controller, or None.
fn parse(line: &str) -> Option<(String, String, String)> {
    let event: Value = serde_json::from_str(line).ok()?;
    let user = event["user"]["username"]
        .as_str()?
        .strip_prefix(SA_PREFIX)?;
    let verb = event["verb"].as_str()?;
    let stage = event["stage"].as_str()?;
    let counted = match stage {
        "ResponseStarted" => verb == "watch",
        "ResponseComplete" | "Panic" => verb != "watch",
        _ => false,
    };
    if !counted {
        return None;
    }
    let object = &event["objectRef"];
    let mut resource = object["resource"].as_str().unwrap_or_default().to_string();
    if let Some(sub) = object["subresource"].as_str() {
        resource = format!("{resource}/{sub}");
    }
    Some((
        user.trim_start_matches("multigres-").to_string(),
        verb.to_string(),
        resource,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_one_event_per_request_and_splits_leases() {
        let sa = "system:serviceaccount:multigres-system:multigres-shard-controller";
        let lines = [
            format!(r#"{{"stage":"ResponseComplete","verb":"patch","user":{{"username":"{sa}"}},"objectRef":{{"resource":"pods"}}}}"#),
            format!(r#"{{"stage":"ResponseComplete","verb":"patch","user":{{"username":"{sa}"}},"objectRef":{{"resource":"shards","subresource":"status"}}}}"#),
            format!(r#"{{"stage":"ResponseComplete","verb":"update","user":{{"username":"{sa}"}},"objectRef":{{"resource":"leases"}}}}"#),
            format!(r#"{{"stage":"ResponseStarted","verb":"watch","user":{{"username":"{sa}"}},"objectRef":{{"resource":"pods"}}}}"#),
            format!(r#"{{"stage":"ResponseComplete","verb":"watch","user":{{"username":"{sa}"}},"objectRef":{{"resource":"pods"}}}}"#),
            format!(r#"{{"stage":"ResponseComplete","verb":"list","user":{{"username":"{sa}"}},"objectRef":{{"resource":"pods"}}}}"#),
            r#"{"stage":"ResponseComplete","verb":"create","user":{"username":"system:admin"},"objectRef":{"resource":"pods"}}"#.to_string(),
        ];
        let dir = std::env::temp_dir().join(format!("bench-audit-{}", std::process::id()));
        std::fs::write(&dir, lines.join("\n") + "\n").unwrap();
        let all = count(&dir, 0, offset(&dir)).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(all.len(), 1);
        let r = &all["shard-controller"];
        assert_eq!((r.reads, r.writes, r.lease_writes), (2, 2, 1));
        assert_eq!(r.writes_by_resource["shards/status"], 1);
        assert_eq!(r.by_verb["watch"], 1);
    }
}
