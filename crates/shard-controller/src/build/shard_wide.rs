//! What every pool pod of a shard shares, besides the pods themselves: the backup repository claim,
//! the pgBackRest TLS Secret and the pg_hba template ConfigMap.

use super::*;

/// The shard's pgBackRest repository (the Database record's filesystem backup location): every pool
/// pod mounts it, so the first pod's backup is what the others restore from. Made from
/// `backup.filesystem.volumeClaimTemplate`, else the first pool's data claim (ReadWriteOnce: pods
/// of a shard on several nodes need a ReadWriteMany storage class here). Kept or deleted with the
/// shard like the data volumes; not made for an S3 repository (an earlier one is kept).
pub fn backup_pvc(shard: &Shard) -> PersistentVolumeClaim {
    let owner = (shard.spec.pvc_deletion_policy.when_deleted == RetentionAction::Delete)
        .then(|| controller_ref(shard))
        .flatten();
    let template = shard
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.filesystem.as_ref()?.volume_claim_template.clone())
        .or_else(|| {
            shard
                .spec
                .pools
                .first()
                .map(|p| p.data_volume_claim_template.clone())
        })
        .unwrap_or_default();
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(naming::backup_pvc(&shard.name_any())),
            namespace: shard.namespace(),
            labels: Some(shard_child_labels(shard)),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(template),
        status: None,
    }
}

/// DNS names pgBackRest may dial a pool pod by (multipooler registers the first form).
pub fn pgbackrest_sans(shard: &Shard) -> Vec<String> {
    let ns = shard.namespace().unwrap_or_default();
    pools(shard)
        .iter()
        .flat_map(|pool| {
            let svc = &pool.service;
            [
                format!("*.{svc}.{ns}.svc"),
                format!("*.{svc}.{ns}.svc.cluster.local"),
                format!("*.{svc}"),
            ]
        })
        .chain(["localhost".to_string()])
        .collect()
}

/// The Secret `name` holding the shard's pgBackRest TLS material (`certificates`).
pub fn pgbackrest_secret(shard: &Shard, name: &str, tls: &IssuedTls) -> Secret {
    let mut metadata = child_meta(shard, name, shard_child_labels(shard));
    metadata.owner_references = controller_ref(shard).map(|o| vec![o]);
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            (PGBACKREST_CA.to_string(), tls.ca_pem.clone()),
            (PGBACKREST_CERT.to_string(), tls.cert_pem.clone()),
            (PGBACKREST_KEY.to_string(), tls.key_pem.clone()),
        ])),
        ..Default::default()
    }
}

/// The ConfigMap holding `PG_HBA_TEMPLATE`, named after its content: a new template is a new
/// ConfigMap (created once, never rewritten) and a new pod spec, so pods roll onto it.
pub fn pg_hba_config_map_name(shard: &Shard) -> String {
    let digest = Sha256::digest(PG_HBA_TEMPLATE.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    naming::dns_name(&[&shard.name_any(), "pg-hba", &hash], naming::MAX_LABEL)
}

pub fn pg_hba_config_map(shard: &Shard) -> ConfigMap {
    let mut metadata = child_meta(
        shard,
        &pg_hba_config_map_name(shard),
        shard_child_labels(shard),
    );
    metadata.owner_references = controller_ref(shard).map(|o| vec![o]);
    ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(
            PG_HBA_FILE.to_string(),
            PG_HBA_TEMPLATE.to_string(),
        )])),
        immutable: Some(true),
        ..Default::default()
    }
}

/// Where the postgres container reads the pool's `postgresql.conf` parameters: pgctld writes an
/// `include_if_exists` of this file into the `postgresql.conf` it generates when it initialises
/// the data folder (`--pg-initdb-extra-conf`), and Postgres reads it at every start.
pub const PG_CONF_DIR: &str = "/etc/multigres/postgresql";
pub const PG_CONF_FILE: &str = "operator.conf";

/// The pool's parameters as `postgresql.conf` lines, sorted by name (values quoted, `'` doubled).
pub fn postgres_conf(parameters: &BTreeMap<String, String>) -> String {
    parameters
        .iter()
        .map(|(name, value)| format!("{name} = '{}'\n", value.replace('\'', "''")))
        .collect()
}

/// The pool's parameters ConfigMap, named after its content: new parameters are a new name, so
/// the pods that mount it are replaced (in the safe order), never edited in place.
pub fn pg_conf_config_map_name(shard: &Shard, pool: &Pool) -> String {
    let digest = Sha256::digest(postgres_conf(&pool.spec.postgres_parameters).as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    naming::dns_name(
        &[&shard.name_any(), &pool.id, "pgconf", &hash],
        naming::MAX_LABEL,
    )
}

pub fn pg_conf_config_map(shard: &Shard, pool: &Pool) -> ConfigMap {
    let mut metadata = child_meta(
        shard,
        &pg_conf_config_map_name(shard, pool),
        pool.labels.clone(),
    );
    metadata.owner_references = controller_ref(shard).map(|o| vec![o]);
    ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(
            PG_CONF_FILE.to_string(),
            postgres_conf(&pool.spec.postgres_parameters),
        )])),
        immutable: Some(true),
        ..Default::default()
    }
}
