//! Spreading connections evenly over [`serve_workers`](crate::serve_workers)' threads.
//!
//! The workers accept from one shared socket, and whichever wakes first takes every connection
//! queued on it: a client that opens its connections in a burst (a load generator, a pool warming
//! up) can land all of them on one worker while the others idle, since a connection never moves
//! once served. So each worker counts the connections it serves, and one that accepts a connection
//! while it serves at least [`SLACK`] more than the least busy worker hands it to that worker
//! (through its inbox, as a std socket: the receiving runtime registers it with its own reactor).
//! The counts are per connection, not per request: the request path touches none of this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A worker hands a connection on once it serves this many more than the least busy one.
const SLACK: usize = 2;

/// Live connection counts, one per worker, each on cache lines of its own.
#[repr(align(128))]
struct Count(AtomicUsize);

/// The workers' shared counts and inboxes.
pub(crate) struct Spread {
    live: Box<[Count]>,
    inbox: Box<[mpsc::UnboundedSender<Handed>]>,
}

/// A connection handed from one worker to another.
pub(crate) struct Handed {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    live: Live,
}

/// One served connection in its worker's count, until dropped (the connection ended).
pub(crate) struct Live {
    spread: Arc<Spread>,
    worker: usize,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.spread.live[self.worker]
            .0
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A worker's place among the others: its number and its inbox.
pub(crate) struct Seat {
    spread: Arc<Spread>,
    me: usize,
    inbox: mpsc::UnboundedReceiver<Handed>,
}

impl Spread {
    /// One seat per worker.
    pub(crate) fn seats(workers: usize) -> Vec<Seat> {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let spread = Arc::new(Spread {
            live: (0..workers).map(|_| Count(AtomicUsize::new(0))).collect(),
            inbox: senders.into_boxed_slice(),
        });
        receivers
            .into_iter()
            .enumerate()
            .map(|(me, inbox)| Seat {
                spread: Arc::clone(&spread),
                me,
                inbox,
            })
            .collect()
    }

    fn count(self: &Arc<Self>, worker: usize) -> Live {
        self.live[worker].0.fetch_add(1, Ordering::Relaxed);
        Live {
            spread: Arc::clone(self),
            worker,
        }
    }
}

impl Seat {
    /// A connection this worker accepted: served here (`Some`), or handed to a less busy worker.
    pub(crate) fn place(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(TcpStream, SocketAddr, Live)> {
        let spread = &self.spread;
        let load = |i: usize| spread.live[i].0.load(Ordering::Relaxed);
        let least = (0..spread.live.len()).min_by_key(|&i| load(i));
        if let Some(to) = least
            && load(to) + SLACK <= load(self.me)
        {
            // Counted there at once, so a burst is split rather than all sent to one worker.
            let live = spread.count(to);
            match stream.into_std() {
                Ok(stream) => match spread.inbox[to].send(Handed { stream, peer, live }) {
                    Ok(()) => return None,
                    // That worker stopped accepting (shutdown): served here after all.
                    Err(mpsc::error::SendError(h)) => {
                        drop(h.live);
                        return TcpStream::from_std(h.stream)
                            .ok()
                            .map(|s| (s, peer, spread.count(self.me)));
                    }
                },
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "cannot hand a connection over");
                    return None;
                }
            }
        }
        Some((stream, peer, spread.count(self.me)))
    }

    /// The next connection another worker handed to this one.
    pub(crate) async fn handed(&mut self) -> Option<(TcpStream, SocketAddr, Live)> {
        loop {
            let h = self.inbox.recv().await?;
            match TcpStream::from_std(h.stream) {
                Ok(stream) => return Some((stream, h.peer, h.live)),
                Err(e) => {
                    tracing::debug!(peer = %h.peer, error = %e, "cannot take a handed connection")
                }
            }
        }
    }
}
