use super::*;
use crate::MultigresCluster;
use crate::resolve::{Templates, resolve_cluster};

const YEAR: i64 = 365 * 86_400;

/// The seed-shaped cluster "c" with TLS as `tls` says.
fn resolved(tls: serde_json::Value) -> ResolvedCluster {
    let cluster: MultigresCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "multigres.com/v1alpha1", "kind": "MultigresCluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {
            "tls": tls,
            "cells": [{"name": "a", "zone": "z-a"}],
            "databases": [{"name": "postgres", "default": true, "spec": {"tablegroups": [
                {"name": "default", "default": true, "shardTemplate": {"pools": [
                    {"type": "replica", "cell": "a", "replicas": 1}
                ]}}
            ]}}]
        }
    }))
    .unwrap();
    resolve_cluster(&cluster, &Templates::default()).unwrap()
}

/// The Secret every holder of the cluster's TLS reference names.
fn secret_names(cluster: &ResolvedCluster) -> Vec<String> {
    let cells = cluster.cells.iter().filter_map(|c| c.spec.tls.as_ref());
    let table_groups = cluster
        .table_groups
        .iter()
        .filter_map(|t| t.spec.tls.as_ref());
    cluster
        .tls
        .iter()
        .chain(cells)
        .chain(table_groups)
        .map(|t| t.secret_name.clone())
        .collect()
}

#[test]
fn certificates_are_kept_until_a_third_of_their_validity_is_left_then_renamed() {
    let (day, year) = (86_400, 365 * 86_400);
    let new = certificate_renewal(None, 1_000, year);
    assert_eq!(new.not_after, Some(fresh_expiry(1_000, year)));
    assert_eq!(new.renew_at, fresh_expiry(1_000, year) - year / 3);

    let issued = |not_after| IssuedCertificates {
        not_after,
        created: 0,
    };
    let kept = certificate_renewal(Some(issued(Some(year))), year / 2, year);
    assert_eq!(kept.not_after, Some(year), "two thirds not yet passed");
    assert_eq!(kept.renew_at, year - year / 3);
    let renewed = certificate_renewal(Some(issued(Some(year))), year - year / 3, year);
    assert_eq!(
        renewed.not_after,
        Some(year - year / 3 + year),
        "due: new ones"
    );

    // Issued before renewal existed: the ten-year certificates keep their names for nine years.
    let old = certificate_renewal(Some(issued(None)), 8 * year, year);
    assert_eq!(old.not_after, None, "no roll on upgrade");
    assert!(old.renew_at > 8 * year + 100 * day);
    let due = certificate_renewal(Some(issued(None)), 9 * year, year);
    assert_eq!(due.not_after, Some(10 * year));
}

#[test]
fn a_new_cluster_gets_a_certificate_named_for_its_expiry_everywhere_it_is_mounted() {
    let mut cluster = resolved(serde_json::json!({}));
    let due = cluster.resolve_cluster_certificate("c", None, Some((1_000, YEAR)));
    assert_eq!(due, Some(fresh_expiry(1_000, YEAR) - YEAR / 3));
    assert_eq!(cluster.tls_renew_at, due);
    let names = secret_names(&cluster);
    assert_eq!(
        names.len(),
        3,
        "the cluster's, one Cell's, one TableGroup's"
    );
    let expected = format!("c-tls-{:010}", fresh_expiry(1_000, YEAR));
    assert!(names.iter().all(|n| *n == expected), "{names:?}");
}

#[test]
fn the_certificate_is_kept_until_due_then_renamed_and_old_clusters_keep_theirs() {
    let issued_name = format!("c-tls-{:010}", YEAR);
    let issued = IssuedSecret {
        name: &issued_name,
        created: 0,
    };
    let mut kept = resolved(serde_json::json!({}));
    kept.resolve_cluster_certificate("c", Some(issued), Some((YEAR / 2, YEAR)));
    assert!(secret_names(&kept).iter().all(|n| *n == issued_name));

    let mut renewed = resolved(serde_json::json!({}));
    let now = YEAR - YEAR / 3;
    renewed.resolve_cluster_certificate("c", Some(issued), Some((now, YEAR)));
    let expected = format!("c-tls-{:010}", now + YEAR);
    assert!(secret_names(&renewed).iter().all(|n| *n == expected));

    // A cluster from before renewal (its ten-year certificate from a throw-away CA): no roll on
    // upgrade.
    let legacy = IssuedSecret {
        name: "c-tls",
        created: 0,
    };
    let mut old = resolved(serde_json::json!({}));
    let due = old.resolve_cluster_certificate("c", Some(legacy), Some((YEAR, YEAR)));
    assert!(secret_names(&old).iter().all(|n| n == "c-tls"));
    assert!(due.unwrap() > 8 * YEAR);
}

#[test]
fn without_the_operator_ca_or_without_tls_nothing_is_renamed() {
    let mut no_ca = resolved(serde_json::json!({}));
    assert_eq!(no_ca.resolve_cluster_certificate("c", None, None), None);
    assert!(secret_names(&no_ca).iter().all(|n| n == "c-tls"));
    // Pods keep the renewable Secret they mount when the CA goes away.
    let issued = IssuedSecret {
        name: "c-tls-0000000042",
        created: 0,
    };
    let mut kept = resolved(serde_json::json!({}));
    kept.resolve_cluster_certificate("c", Some(issued), None);
    assert!(secret_names(&kept).iter().all(|n| n == "c-tls-0000000042"));

    let mut plaintext = resolved(serde_json::json!({"enabled": false}));
    assert_eq!(
        plaintext.resolve_cluster_certificate("c", None, Some((0, YEAR))),
        None
    );
    assert!(secret_names(&plaintext).is_empty());
}

#[test]
fn reconciles_moments_apart_name_the_same_certificate() {
    let hour = 3_600;
    // A year: rounded up to the hour.
    let first = fresh_expiry(1_000, YEAR);
    assert_eq!(first % hour, 0);
    assert!(first >= 1_000 + YEAR && first < 1_000 + YEAR + hour);
    assert_eq!(fresh_expiry(1_002, YEAR), first);
    // A minute (the tests' validity): to the second, never shorter.
    assert_eq!(fresh_expiry(1_000, 60), 1_060);
}
