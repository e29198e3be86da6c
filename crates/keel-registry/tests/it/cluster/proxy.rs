//! A fault-injecting TCP proxy: forwards to one node until cut, then drops every open
//! connection and refuses new ones until healed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    pub addr: SocketAddr,
    /// `Some` while traffic flows; cancelled on a cut so open connections die with it.
    open: Arc<Mutex<Option<CancellationToken>>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(Mutex::new(Some(CancellationToken::new())));
        let state = open.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Some(token) = state.lock().unwrap().clone() else {
                    drop(inbound);
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Self { addr, open }
    }

    pub fn url(&self) -> String {
        format!("http://{}/eureka/", self.addr)
    }

    pub fn cut(&self) {
        if let Some(token) = self.open.lock().unwrap().take() {
            token.cancel();
        }
    }

    pub fn heal(&self) {
        let mut open = self.open.lock().unwrap();
        if open.is_none() {
            *open = Some(CancellationToken::new());
        }
    }
}
