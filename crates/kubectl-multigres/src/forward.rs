//! A local port carried over port-forwards to one pod: psql's session to a gateway, and `status`'s
//! questions to multiadmin.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

/// Accepts local connections and carries each over its own port-forward to `pod:port`.
pub async fn forward(listener: tokio::net::TcpListener, pods: Api<Pod>, pod: String, port: u16) {
    loop {
        let Ok((mut local, _)) = listener.accept().await else {
            return;
        };
        let pods = pods.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            let mut forwarder = match pods.portforward(&pod, &[port]).await {
                Ok(f) => f,
                Err(error) => {
                    eprintln!("port-forward to pod {pod}:{port} failed: {error}");
                    return;
                }
            };
            let Some(mut remote) = forwarder.take_stream(port) else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
            drop(remote);
            let _ = forwarder.join().await;
        });
    }
}

/// A local port on 127.0.0.1 that leads to `pod:port` for as long as the process runs. One
/// port-forward is made first, so that one the API server refuses fails here, with its reason.
pub async fn open(pods: Api<Pod>, pod: String, port: u16) -> anyhow::Result<u16> {
    use anyhow::Context;
    let probe = pods
        .portforward(&pod, &[port])
        .await
        .with_context(|| format!("port-forward to pod {pod}:{port}"))?;
    drop(probe);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("listening on 127.0.0.1")?;
    let local = listener.local_addr()?.port();
    tokio::spawn(forward(listener, pods, pod, port));
    Ok(local)
}
