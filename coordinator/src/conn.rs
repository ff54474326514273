//! Connections to the shared port (gRPC, the dashboard, the worker artifact), admitted
//! under limits so that no peer, authenticated or not, can hold it: at most
//! `max_connections` in all and `max_connections_per_peer` from one address (more are
//! closed at once, before a byte is read); a connection the server has not yet answered
//! (no complete TLS hello, HTTP/2 preface or HTTP/1 request) when the handshake timeout
//! runs out, or one silent both ways for the idle timeout after that, is closed. Accept errors (out of descriptors, say) are logged and retried after a
//! growing pause instead of spinning.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_peer: usize,
    /// Until the server's first answer (a peer that never sends a whole handshake).
    pub handshake: Duration,
    /// Silence both ways after that (longer than the longest long-poll).
    pub idle: Duration,
}

impl Limits {
    /// The total cap, kept under this process's descriptor limit (with room for the
    /// database pool, files and logs) whatever was asked.
    pub fn fitted(mut self) -> Limits {
        if let Some(fds) = descriptor_limit() {
            let room = fds.saturating_sub(96).max(16);
            if self.max_connections > room {
                tracing::warn!(asked = self.max_connections, fds, cap = room,
                    "--max-connections is above what the descriptor limit allows: capped (raise LimitNOFILE / ulimit -n)");
                self.max_connections = room;
            }
        }
        self
    }
}

/// Raises this process's soft limit on open files to its hard limit (as Go's runtime
/// does): a container or a login shell often starts a server at 1,024, a few hundred idle
/// peers away from refusing everyone. Returns the limit now in force.
pub fn raise_descriptor_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// This process's soft limit on open files.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Who is connected: counts in all and by peer address.
#[derive(Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// An admitted connection's place, given back when it closes.
struct Slot {
    open: Arc<Mutex<Open>>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connections");
        open.total -= 1;
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

/// Takes a slot for `peer`, or None when the total or the peer's share is used up.
fn admit(open: &Arc<Mutex<Open>>, limits: &Limits, peer: IpAddr) -> Option<Slot> {
    let mut o = open.lock().expect("connections");
    let mine = o.by_peer.get(&peer).copied().unwrap_or(0);
    if o.total >= limits.max_connections || mine >= limits.max_per_peer {
        return None;
    }
    o.total += 1;
    *o.by_peer.entry(peer).or_default() += 1;
    Some(Slot { open: open.clone(), peer })
}

/// Accepted, admitted connections with Nagle's algorithm off (connections handed to tonic
/// through `serve_with_incoming` do not get its TCP settings, and small gRPC replies held
/// back until the peer's delayed ACK cost about 40 ms per call). Never yields an error:
/// tonic would end the server on one.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
) -> impl futures::Stream<Item = std::io::Result<Guarded>> + Send + 'static {
    let open = Arc::new(Mutex::new(Open::default()));
    futures::stream::unfold(
        (listener, open, Duration::ZERO, 0u64),
        move |(listener, open, mut pause, mut refused)| async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, or the like: wait for connections to close.
                        pause = (pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                        tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "accept failed; pausing");
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                };
                pause = Duration::ZERO;
                let Some(slot) = admit(&open, &limits, peer.ip()) else {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(%peer, refused, "connection refused: too many open (in all, or from this address)");
                    }
                    continue; // dropped: closed at once
                };
                if stream.set_nodelay(true).is_err() {
                    continue;
                }
                let guarded = Guarded::new(stream, slot, limits);
                return Some((Ok(guarded), (listener, open, pause, refused)));
            }
        },
    )
}

/// An admitted connection: its slot, and the deadline by which it must show activity.
pub struct Guarded {
    inner: TcpStream,
    _slot: Slot,
    idle: Duration,
    /// Whether the server has written: until then the handshake deadline stands, however
    /// many bytes trickle in.
    answered: bool,
    deadline: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(inner: TcpStream, slot: Slot, limits: Limits) -> Guarded {
        let deadline = Box::pin(tokio::time::sleep(limits.handshake));
        Guarded { inner, _slot: slot, idle: limits.idle, answered: false, deadline }
    }

    /// Bytes moved: the idle deadline starts again, once the server has answered.
    fn active(&mut self, wrote: bool) {
        self.answered |= wrote;
        if self.answered {
            self.deadline.as_mut().reset(Instant::now() + self.idle);
        }
    }

    /// An error once the deadline has passed (the connection is then closed).
    fn expired(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connection silent too long")),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        // Checked on every read, so bytes trickling in one at a time do not keep a
        // half-sent handshake open (and the timer wakes a read that waits).
        if let Err(e) = self.expired(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.active(false);
        }
        r
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.active(true);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.active(true);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
