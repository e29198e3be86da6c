//! Binding a listener and announcing its real address in the one line scripts and tests read.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A bound TCP listener that belongs to a named component.
pub struct BoundListener {
    pub component: &'static str,
    pub listener: TcpListener,
    pub local_addr: SocketAddr,
}

/// Binds `addr` (port 0 allowed) and logs exactly one `<component> listening on http://<addr>`
/// line with the real bound port. Scripts and tests discover ports from that line, so its wording
/// is part of Keel's interface.
pub async fn bind(component: &'static str, addr: SocketAddr) -> std::io::Result<BoundListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("{component}: cannot bind {addr}: {e}"))
    })?;
    let local_addr = listener.local_addr()?;
    tracing::info!("{component} listening on http://{local_addr}");
    Ok(BoundListener {
        component,
        listener,
        local_addr,
    })
}
