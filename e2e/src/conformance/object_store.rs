//! An S3 repository on the real binaries (docs/backup-restore.md): an S3-compatible server
//! (MinIO or moto, `MULTIGRES_CONFORMANCE_S3_SERVER`) on its own address with a self-signed
//! certificate, and a
//! third cluster whose `backup.s3` names it (credentials from a Secret). Its pods bootstrap with
//! no repository claim at all: the first backup goes to the bucket, the replicas restore from it,
//! writes and reads pass through multigateway, and a backup taken as the controller takes one is
//! listed and stored as objects under the cluster's key prefix.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{Api, Client, ResourceExt};
use multigres_api::labels;

use super::checks::full_backup;
use super::dns::Hosts;
use super::kubelet::Pids;
use super::operator_run::{Options, Running};
use super::restore::{gateway, pool_pods, replace_cluster, restored_backups};
use super::sql;

/// Where the object store listens, and the name the manifest's endpoint resolves from.
const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 11, 1);
const HOST: &str = "s3test";
const BUCKET: &str = "conformance-backups";
/// The keys of `deploy/samples/conformance/s3.yaml`'s Secret, the server's own credentials.
const ACCESS_KEY: &str = "AKIACONFORMANCE";
const SECRET_KEY: &str = "conformance-only-secret";

/// The object store, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    opts: &Options,
    admin: &Client,
    ns: &str,
    before: &Running,
    manifest: &Path,
    address_map: &str,
    pids: &Pids,
    server: &Path,
) -> Result<()> {
    let root = &opts.root;
    let _server = start(server, &opts.work)?;
    println!(
        "  substitution: S3 is {} at https://{HOST} ({ADDRESS}:443, self-signed; Multigres sets verify-tls=n for a custom endpoint), bucket {BUCKET}",
        server.display()
    );
    let mut extra = Hosts::default();
    extra.add(ADDRESS, [HOST.to_string()]);
    let old: Vec<String> = before.pods.iter().map(|(p, _)| p.name_any()).collect();
    let (name, running) =
        replace_cluster(opts, admin, ns, &old, manifest, address_map, &extra, pids).await?;
    let started = Instant::now();
    let gw = gateway(admin, ns, &name, &running.services, &running.pods).await?;
    let (_, id) = sql::until_ok(root, &gw, &sql::insert("s3"), Duration::from_secs(300))
        .await
        .context("the first write through the S3-backed cluster")?;
    println!(
        "  CHECK bootstrap on an S3 repository: ok, write through {name}'s multigateway (row {id}) {:.1}s after its pods started",
        started.elapsed().as_secs_f64()
    );

    let claims: Vec<String> = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), ns)
        .list(&Default::default())
        .await?
        .into_iter()
        .map(|c| c.name_any())
        .filter(|c| c.starts_with(&format!("backups-{name}-")))
        .collect();
    if !claims.is_empty() {
        bail!("an S3 repository needs no backup claim, yet {claims:?} exist");
    }
    let pool = pool_pods(&running);
    let deadline = Instant::now() + Duration::from_secs(120);
    let from_s3 = loop {
        let restored = restored_backups(&opts.work.join("logs/pods"), &pool);
        if restored.len() + 1 >= pool.len() || Instant::now() > deadline {
            break restored;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    if from_s3.len() + 1 < pool.len() {
        bail!("replicas restored from the bucket: {from_s3:?} of {pool:?}");
    }
    println!(
        "  CHECK replicas restored from the S3 repository: ok ({} of {} pool pods, backup {:?})",
        from_s3.len(),
        pool.len(),
        from_s3.first()
    );

    let shard = Api::<multigres_api::Shard>::namespaced(admin.clone(), ns)
        .list(&kube::api::ListParams::default().labels(&format!("{}={name}", labels::CLUSTER)))
        .await?
        .items
        .into_iter()
        .next()
        .context("no Shard")?;
    let (_, _, backup_id, _) = full_backup(&shard, &running.pods).await?;
    let prefix = format!(
        "{ns}/{name}/{}/multigres/backup/multigres/{backup_id}/",
        shard.spec.database
    );
    let objects = list_objects(&prefix)?;
    if objects == 0 {
        bail!("no object under s3://{BUCKET}/{prefix}");
    }
    println!(
        "  CHECK the backup is in the bucket: ok, {objects} objects under s3://{BUCKET}/{prefix}"
    );
    Ok(())
}

/// Starts the server (MinIO when its file name says so, else moto) on [`ADDRESS`]:443 with a
/// fresh self-signed certificate for [`HOST`], and creates the bucket.
fn start(server: &Path, work: &Path) -> Result<Server> {
    let dir = work.join("s3");
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={HOST}")])
        .args(["-addext", &format!("subjectAltName=DNS:{HOST}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !made.success() {
        bail!("openssl could not make the object store's certificate");
    }
    let log = std::fs::File::create(work.join("logs/s3-server.log"))?;
    let minio = server
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("minio"));
    let mut command = Command::new(server);
    if minio {
        // MinIO reads its certificate pair from a folder, under fixed names.
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs)?;
        std::fs::copy(&cert, certs.join("public.crt"))?;
        std::fs::copy(&key, certs.join("private.key"))?;
        command
            .arg("server")
            .arg(dir.join("data"))
            .args(["--address", &format!("{ADDRESS}:443"), "--certs-dir"])
            .arg(&certs)
            .env("MINIO_ROOT_USER", ACCESS_KEY)
            .env("MINIO_ROOT_PASSWORD", SECRET_KEY);
    } else {
        command
            .args(["-H", &ADDRESS.to_string(), "-p", "443", "-c"])
            .arg(&cert)
            .arg("-k")
            .arg(&key);
    }
    let child = command
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    let running = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect_timeout(
        &SocketAddr::new(ADDRESS.into(), 443),
        Duration::from_secs(1),
    )
    .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on {ADDRESS}:443 within 30s",
                server.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let created = curl(&["-X", "PUT", &format!("https://{ADDRESS}/{BUCKET}")])?;
    if created.contains("<Error>") {
        bail!("creating bucket {BUCKET}: {created}");
    }
    Ok(running)
}

/// How many objects the bucket holds under `prefix`.
fn list_objects(prefix: &str) -> Result<usize> {
    // Percent-encoded, as SigV4 signs the query (MinIO refuses a raw `/` in it).
    let encoded: String = prefix
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let listed = curl(&[&format!(
        "https://{ADDRESS}/{BUCKET}?list-type=2&prefix={encoded}"
    )])?;
    if listed.contains("<Error>") {
        bail!("listing s3://{BUCKET}/{prefix}: {listed}");
    }
    Ok(listed.matches("<Key>").count())
}

/// An S3 request to the object store (path style, named by [`HOST`], signed with the Secret's
/// keys).
fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl")
        .args(["-sk", "-H", &format!("Host: {HOST}")])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}
