//! Stand-in for the managed TopoServers' pods: a TCP forwarder on the address and port the pods
//! dial (the client Service's name resolves to it through the hosts file) to the harness's real
//! etcd for that TopoServer, which the stack already runs on another loopback port.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};

/// Forwards every connection to `listen` to `target` until the returned task is aborted.
pub async fn forward(
    listen: SocketAddr,
    target: SocketAddr,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} for the TopoServer stand-in"))?;
    Ok(tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }))
}
