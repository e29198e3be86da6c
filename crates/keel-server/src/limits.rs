//! Request limits: bodies over the limit get 413, header blocks over the limit get 431, and a client
//! that does not finish its request head in time is disconnected.

use std::time::Duration;

/// Size limits applied to every request a component serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body accepted, in bytes; larger bodies get 413. `usize::MAX` leaves the
    /// limit to the component (the gateway enforces its own, per route).
    pub max_body_bytes: usize,
    /// Largest request head (request line plus headers), in bytes; larger heads get 431.
    /// hyper enforces a floor of 8 KiB.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete HTTP/1 request head (slowloris defence); past it the
    /// connection is closed before anything is routed.
    pub header_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}
