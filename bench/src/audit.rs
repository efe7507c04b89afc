//! API requests per user from the API server's audit log (Metadata level, RequestReceived
//! omitted): one request is one `ResponseComplete` event, or for a watch its `ResponseStarted`.
//!
//! The API server rotates its log at 100 MB (`audit-<time>.log` beside it; a large run writes
//! several), so spans are marked by time, not by byte offset, and every file is read.

use std::collections::BTreeMap;
use std::io::Read;
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

/// Now, in the audit log's `stageTimestamp` format (UTC, microseconds), which sorts as text.
pub fn offset(_log: &Path) -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The log and its rotated backups.
fn files(log: &Path) -> Vec<std::path::PathBuf> {
    let stem = log
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let Some(dir) = log.parent() else {
        return vec![log.to_path_buf()];
    };
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .is_some_and(|n| n.starts_with(&stem) && n.ends_with(".log"))
        })
        .collect();
    out.sort();
    out
}

/// Requests per controller user (the ServiceAccount name without the prefix) whose event time is
/// in `[from, to)`.
pub fn count(log: &Path, from: String, to: String) -> Result<BTreeMap<String, Requests>> {
    let mut out: BTreeMap<String, Requests> = BTreeMap::new();
    for file in files(log) {
        let mut text = String::new();
        std::fs::File::open(&file)?.read_to_string(&mut text)?;
        count_text(&text, &from, &to, &mut out);
    }
    Ok(out)
}

fn count_text(text: &str, from: &str, to: &str, out: &mut BTreeMap<String, Requests>) {
    for line in text.lines() {
        // Cheap filters first: most events belong to other users.
        if !line.contains(SA_PREFIX) {
            continue;
        }
        let Some(at) = line
            .split("\"stageTimestamp\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        if at < from || at >= to {
            continue;
        }
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
    // A dry run (how the controllers ask whether a Secret exists without reading it) stores
    // nothing: counted as a read.
    let dry_run = event["requestURI"]
        .as_str()
        .is_some_and(|uri| uri.contains("dryRun=All"));
    let verb = if dry_run { "dry-run" } else { verb };
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
    fn marks_sort_like_the_audit_timestamps() {
        let now = offset(Path::new("audit.log"));
        assert_eq!(now.len(), "2026-11-26T16:00:00.000001Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.as_str() > "2026-01-01T00:00:00.000000Z");
    }

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
            format!(r#"{{"stage":"ResponseComplete","verb":"create","requestURI":"/api/v1/namespaces/a/secrets?dryRun=All","user":{{"username":"{sa}"}},"objectRef":{{"resource":"secrets"}}}}"#),
            r#"{"stage":"ResponseComplete","verb":"create","user":{"username":"system:admin"},"objectRef":{"resource":"pods"}}"#.to_string(),
        ];
        let lines: Vec<String> = lines
            .iter()
            .map(|l| {
                l.replacen(
                    '{',
                    r#"{"stageTimestamp":"2026-11-26T16:00:00.000001Z","#,
                    1,
                )
            })
            .collect();
        let mut all = BTreeMap::new();
        count_text(
            &(lines.join("\n") + "\n"),
            "2026-11-26T16:00:00.000000Z",
            "2026-11-26T16:00:01.000000Z",
            &mut all,
        );
        let mut none = BTreeMap::new();
        count_text(
            &lines.join("\n"),
            "2026-11-26T16:00:01.000000Z",
            "2026-11-26T16:00:02.000000Z",
            &mut none,
        );
        assert!(none.is_empty());
        assert_eq!(all.len(), 1);
        let r = &all["shard-controller"];
        assert_eq!((r.reads, r.writes, r.lease_writes), (3, 2, 1));
        assert_eq!(r.writes_by_resource["shards/status"], 1);
        assert_eq!(r.by_verb["dry-run"], 1);
        assert_eq!(r.by_verb["watch"], 1);
    }
}
