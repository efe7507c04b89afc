//! Reading the API server's audit log (Metadata level, one JSON event per line).

use std::fmt;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

/// A request the API server refused with 403.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forbidden {
    pub user: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(
            f,
            "{} may not {} {}/{} {}/{}",
            self.user, self.verb, group, self.resource, self.namespace, self.name
        )
    }
}

/// Every 403 answered to a user whose name starts with `user_prefix` (e.g.
/// `system:serviceaccount:multigres-system:`).
pub fn forbidden(audit_log: &Path, user_prefix: &str) -> Result<Vec<Forbidden>> {
    let text = std::fs::read_to_string(audit_log)?;
    Ok(text
        .lines()
        .filter_map(|line| parse(line, user_prefix))
        .collect())
}

fn parse(line: &str, user_prefix: &str) -> Option<Forbidden> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event["responseStatus"]["code"].as_i64() != Some(403) {
        return None;
    }
    let user = event["user"]["username"].as_str()?;
    if !user.starts_with(user_prefix) {
        return None;
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let object = &event["objectRef"];
    let mut resource = s(&object["resource"]);
    if let Some(sub) = object["subresource"].as_str() {
        resource = format!("{resource}/{sub}");
    }
    Some(Forbidden {
        user: user.to_string(),
        verb: s(&event["verb"]),
        group: s(&object["apiGroup"]),
        resource,
        namespace: s(&object["namespace"]),
        name: s(&object["name"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_403s_of_the_named_users_only() {
        let ok = r#"{"verb":"get","user":{"username":"system:serviceaccount:multigres-system:multigres-cell-controller"},"objectRef":{"resource":"cells","apiGroup":"multigres.com"},"responseStatus":{"code":200}}"#;
        let denied = r#"{"verb":"patch","user":{"username":"system:serviceaccount:multigres-system:multigres-cell-controller"},"objectRef":{"resource":"deployments","apiGroup":"apps","namespace":"example","name":"gw"},"responseStatus":{"code":403}}"#;
        let other = r#"{"verb":"list","user":{"username":"system:anonymous"},"objectRef":{"resource":"pods"},"responseStatus":{"code":403}}"#;
        let prefix = "system:serviceaccount:multigres-system:";
        assert_eq!(parse(ok, prefix), None);
        assert_eq!(parse(other, prefix), None);
        assert_eq!(parse("not json", prefix), None);
        let f = parse(denied, prefix).expect("a 403");
        assert_eq!(
            f.to_string(),
            "system:serviceaccount:multigres-system:multigres-cell-controller may not patch apps/deployments example/gw"
        );
    }
}
