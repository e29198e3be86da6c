//! How replication reaches a peer: a connector yielding byte streams, so the deterministic
//! simulation (turmoil) can drive the same HTTP code that production runs over TCP.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream to a peer.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerIo for T {}

/// A boxed future, as connectors return them.
pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Box<dyn PeerIo>>> + Send + 'a>>;

/// Opens byte streams to peers. Production uses [`TcpConnector`]; a simulation supplies its
/// own network.
pub trait PeerConnector: Send + Sync + 'static {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> ConnectFuture<'a>;
}

/// Plain TCP through tokio, with Nagle off (batches are small and latency-sensitive).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl PeerConnector for TcpConnector {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> ConnectFuture<'a> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host, port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn PeerIo>)
        })
    }
}
