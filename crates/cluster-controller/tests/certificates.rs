//! `spec.tls.certManager` against a real API server with cert-manager's own Certificate CRD
//! (tests/fixtures/cert-manager-v1.19.2, from the module github.com/cert-manager/cert-manager@v1.19.2,
//! deploy/crds): the controller applies a Certificate for the cluster's TLS Secret, which the API
//! server accepts under the CRD's schema, and does not issue the Secret itself; without the CRD
//! the cluster says so; a renewal (`status.revision` 2) reaches every child and multiadmin's pod
//! template. Its own control plane (this binary), because it installs a CRD the other
//! tests must not see.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use multigres_api::cluster::{CertManagerConfig, IssuerRef, TlsConfig};
use multigres_api::{Cell, MultigresCluster, TableGroup, naming};
use multigres_cluster_controller::build::{self, Certificate};
use multigres_e2e::wait_for;

const CRD: &str = include_str!("fixtures/cert-manager-v1.19.2/cert-manager.io_certificates.yaml");

fn with_cert_manager(mut cluster: MultigresCluster) -> MultigresCluster {
    cluster.spec.tls = Some(TlsConfig {
        cert_manager: Some(CertManagerConfig {
            issuer_ref: IssuerRef {
                name: "cluster-ca".into(),
                kind: None,
                group: None,
            },
        }),
        ..Default::default()
    });
    cluster
}

fn degraded_message(cluster: &MultigresCluster) -> Option<String> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded" && c.status == "True")
        .map(|c| c.message.clone())
}

#[tokio::test]
async fn cert_manager_issues_the_clusters_certificate_when_asked() {
    let cp = cp();
    setup().await;
    let client = cp.client();

    // Without cert-manager: the cluster says the kind is missing, naming the field.
    let before = cp.namespace("cm-missing").await.unwrap();
    let _early = start_controller(&before, "").await.unwrap();
    apply_templates(&client, &before).await.unwrap();
    apply(&client, &with_cert_manager(sample_cluster(&before)))
        .await
        .unwrap();
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &before);
    let reported = wait_for(&clusters, SAMPLE, WAIT, |c| {
        degraded_message(c).is_some_and(|m| m.contains("spec.tls.certManager"))
    })
    .await
    .unwrap();
    eprintln!(
        "without cert-manager: {}",
        degraded_message(&reported).unwrap()
    );

    // With the CRD: a Certificate for the cluster's Secret, as built, and no Secret of ours.
    install_crd(&client, CRD).await.unwrap();
    let after = cp.namespace("cm-installed").await.unwrap();
    let _late = start_controller(&after, "").await.unwrap();
    apply_templates(&client, &after).await.unwrap();
    let cluster = apply(&client, &with_cert_manager(sample_cluster(&after)))
        .await
        .unwrap();
    let certificates: Api<Certificate> = Api::namespaced(client.clone(), &after);
    let certificate = wait_for(&certificates, SAMPLE, WAIT, |_| true)
        .await
        .unwrap();
    let secret = naming::tls_secret(SAMPLE);
    let expected = build::certificate(&cluster, &secret).unwrap();
    assert_eq!(certificate.spec, expected.spec);
    assert_eq!(certificate.spec.secret_name, secret);
    assert!(
        certificate
            .spec
            .dns_names
            .contains(&"multigres-internal".to_string())
    );
    assert_eq!(certificate.spec.issuer_ref.kind.as_deref(), Some("Issuer"));
    assert_eq!(
        certificate.owner_references()[0].uid,
        cluster.uid().unwrap()
    );
    // Strict field validation: no field of ours is unknown to cert-manager's schema.
    Api::<Certificate>::namespaced(client.clone(), &after)
        .patch(
            SAMPLE,
            &PatchParams::apply("strict-check")
                .validation_strict()
                .dry_run(),
            &Patch::Apply(&expected),
        )
        .await
        .unwrap();
    // The cluster's TLS Secret is cert-manager's to write: the operator made none.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &after);
    assert!(secrets.get_metadata_opt(&secret).await.unwrap().is_none());
    // ... while the credentials it does issue exist.
    wait_for(&secrets, &naming::credentials_secret(SAMPLE), WAIT, |_| {
        true
    })
    .await
    .unwrap();

    // The first issuance rolls nothing: no revision annotation on multiadmin's pods.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &after);
    let admin = naming::multiadmin(SAMPLE);
    set_revision(&certificates, 1).await;
    let first = wait_for(&deployments, &admin, WAIT, |_| true)
        .await
        .unwrap();
    assert_eq!(pod_revision(&first), None);

    // cert-manager renews (revision 2): the Cells and TableGroups carry it, multiadmin's pod
    // template too (the cell and shard controllers put it on theirs, so they roll).
    let renewed = std::time::Instant::now();
    set_revision(&certificates, 2).await;
    wait_for(&deployments, &admin, WAIT, |d| {
        pod_revision(d).as_deref() == Some("2")
    })
    .await
    .unwrap();
    // Applied after multiadmin's Deployment, in the same reconcile.
    let cells: Api<Cell> = Api::namespaced(client.clone(), &after);
    let table_groups: Api<TableGroup> = Api::namespaced(client.clone(), &after);
    let renewed_tls = |tls: Option<&multigres_api::TlsRef>| tls.and_then(|t| t.revision) == Some(2);
    let cell_names = names(&cells).await;
    assert_eq!(cell_names.len(), 2);
    for name in &cell_names {
        wait_for(&cells, name, WAIT, |c| renewed_tls(c.spec.tls.as_ref()))
            .await
            .unwrap();
    }
    let group_names = names(&table_groups).await;
    assert_eq!(group_names.len(), 4);
    for name in &group_names {
        wait_for(&table_groups, name, WAIT, |t| {
            renewed_tls(t.spec.tls.as_ref())
        })
        .await
        .unwrap();
    }
    eprintln!(
        "renewal (revision 2) reached the children and multiadmin's pod template in {:.1}s",
        renewed.elapsed().as_secs_f64()
    );
}

async fn names<K>(api: &Api<K>) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(&Default::default()).await.unwrap();
    list.iter().map(|o| o.name_any()).collect()
}

/// Plays cert-manager: the Certificate's `status.revision`.
async fn set_revision(certificates: &Api<Certificate>, revision: i64) {
    certificates
        .patch_status(
            SAMPLE,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"revision": revision}})),
        )
        .await
        .unwrap();
}

fn pod_revision(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(multigres_api::labels::TLS_REVISION)
        .cloned()
}
