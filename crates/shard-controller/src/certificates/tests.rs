use super::*;

const YEAR: i64 = 365 * 86_400;
const SHARD: &str = "c-db-tg-0";

fn renewable(not_after: i64) -> String {
    naming::pgbackrest_tls_secret_until(SHARD, not_after)
}

#[test]
fn a_new_shard_gets_a_certificate_named_for_its_expiry() {
    let decision = pgbackrest_secret(SHARD, 0, &[], Some((1_000, YEAR)));
    let expiry = multigres_api::resolve::fresh_expiry(1_000, YEAR);
    assert_eq!(decision.secret, renewable(expiry));
    assert_eq!(decision.renew_at, Some(expiry - YEAR / 3));
}

#[test]
fn the_newest_mounted_certificate_is_kept_until_due_then_renamed() {
    // Mid-roll after a renewal: some pods on the old Secret, some on the new one.
    let mounted = [renewable(YEAR), renewable(2 * YEAR)];
    let kept = pgbackrest_secret(SHARD, 0, &mounted, Some((YEAR + 10, YEAR)));
    assert_eq!(kept.secret, renewable(2 * YEAR), "the newest one, not back");
    let due_at = 2 * YEAR - YEAR / 3;
    assert_eq!(kept.renew_at, Some(due_at));
    let renewed = pgbackrest_secret(SHARD, 0, &mounted, Some((due_at, YEAR)));
    assert_eq!(renewed.secret, renewable(due_at + YEAR));
}

#[test]
fn pods_from_before_renewal_keep_their_secret_for_nine_years() {
    let legacy = [naming::pgbackrest_tls_secret(SHARD)];
    let kept = pgbackrest_secret(SHARD, 0, &legacy, Some((YEAR, YEAR)));
    assert_eq!(kept.secret, legacy[0], "no roll on upgrade");
    assert!(kept.renew_at.unwrap() > 8 * YEAR);
    let due = pgbackrest_secret(SHARD, 0, &legacy, Some((9 * YEAR, YEAR)));
    assert_eq!(due.secret, renewable(10 * YEAR));
}

#[test]
fn without_the_operator_ca_the_mounted_secret_stays() {
    assert_eq!(
        pgbackrest_secret(SHARD, 0, &[], None),
        Decision {
            secret: naming::pgbackrest_tls_secret(SHARD),
            renew_at: None
        }
    );
    let mounted = [renewable(42)];
    assert_eq!(
        pgbackrest_secret(SHARD, 0, &mounted, None).secret,
        mounted[0]
    );
}

#[test]
fn a_decision_is_remembered_until_the_pods_show_it() {
    let root = {
        let (cert, key) = pki::generate_ca("topology CA").unwrap();
        Arc::new(Authority::from_pem(&cert, &key).unwrap())
    };
    let certificates = PgBackRest::new(Some(root), Duration::from_secs(YEAR as u64));
    let mut shard = Shard::new(
        SHARD,
        serde_json::from_value(serde_json::json!({
            "database": "db", "tableGroup": "tg", "shardName": "0", "keyRange": "0",
            "images": {"multipooler": "m", "postgres": "p"},
            "pools": [],
            "globalTopoServer": {"rootPath": "/r", "address": "a:2379"},
            "credentials": {"secretName": "s", "usernameKey": "u", "passwordKey": "p"},
            "pvcDeletionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}
        }))
        .unwrap(),
    );
    shard.metadata.uid = Some("uid-1".into());
    shard.metadata.namespace = Some("ns".into());
    let first = certificates.decide(&shard, &[], 1_000);
    // A second later, the pods not yet cached: the same Secret, not a new one.
    let again = certificates.decide(&shard, &[], 1_001);
    assert_eq!(first, again);
    // Issued from the Shard's derived CA, until the expiry in the name.
    let tls = certificates.issue(&shard, &first.secret).unwrap();
    let (_, leaf) = x509_parser::pem::parse_x509_pem(tls.cert_pem.as_bytes()).unwrap();
    let leaf = leaf.parse_x509().unwrap();
    let expiry = multigres_api::resolve::fresh_expiry(1_000, YEAR);
    assert_eq!(leaf.validity().not_after.timestamp(), expiry);
    assert_eq!(leaf.subject().to_string(), "CN=pgbackrest");
    certificates.forget(&shard);
    let later = certificates.decide(&shard, &[], 1_000 + 2 * 3_600);
    assert_ne!(later, first, "forgotten once the Shard goes");
}
