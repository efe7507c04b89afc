//! A TLS front for the harness's shared etcd, standing in for every test cluster's own etcd that
//! speaks TLS (docs/testing.md). Clusters in many namespaces share one etcd through the address
//! map's `*:2379` rule, so no one certificate can carry their names: the front issues, from the
//! topology CA, a certificate for whatever name a client asks for (SNI), requires a client
//! certificate of that CA as etcd's `--client-cert-auth` does, and forwards the plaintext stream to
//! etcd. The stack's own cluster dials a real TLS etcd instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use multigres_runtime::pki::Authority;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Issues a certificate per server name, once.
#[derive(Debug)]
struct PerName {
    authority: Arc<Authority>,
    provider: Arc<CryptoProvider>,
    issued: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for PerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_string();
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = issued.get(&name) {
            return Some(key.clone());
        }
        let leaf = self
            .authority
            .sign(&name, std::slice::from_ref(&name))
            .ok()?;
        let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).ok()?];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).ok()?;
        let key = Arc::new(CertifiedKey::from_der(chain, key, &self.provider).ok()?);
        issued.insert(name, key.clone());
        Some(key)
    }
}

/// Serves TLS on a free loopback port, forwarding to `target` (plaintext etcd), on a thread of its
/// own until the process exits (a test's runtime may end before the suite does). Returns the port.
pub fn start(authority: Arc<Authority>, target: SocketAddr) -> Result<u16> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(
        authority.ca_pem().as_bytes(),
    )?)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("client certificate verifier")?;
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(PerName {
            authority,
            provider,
            issued: Mutex::default(),
        }));
    // gRPC clients (Rust and Go) insist on HTTP/2 by ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    std::thread::Builder::new()
        .name("etcd-tls-front".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the TLS front");
            runtime.block_on(serve(listener, acceptor, target));
        })?;
    Ok(port)
}

async fn serve(listener: std::net::TcpListener, acceptor: TlsAcceptor, target: SocketAddr) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    while let Ok((inbound, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(inbound).await else {
                return;
            };
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut outbound).await;
            }
        });
    }
}
