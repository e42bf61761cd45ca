//! Accepting connections with bounds, so that clients that are slow, silent
//! or many cannot starve everyone else:
//! - a cap on open connections (further clients wait in the kernel's
//!   backlog until one closes, instead of exhausting file descriptors);
//! - the request head must arrive within [`HEAD_TIMEOUT`] of the
//!   connection opening or of the previous response (this also closes
//!   idle keep-alive connections);
//! - a connection on which no byte moves either way for [`IDLE_TIMEOUT`]
//!   is closed (a body trickled in, a response nobody reads).
//!
//! Each request carries the peer's address ([`ConnectInfo`]) for per-client
//! bounds such as the number of live event streams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

/// Time allowed for a request's head (line and headers), counted from the
/// connection's start or the end of the previous response.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection may go without a byte moving either way.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time in-flight requests get to finish at shutdown; event streams never
/// finish on their own.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The bounds on connections.
pub struct Bounds {
    pub max_connections: usize,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
}

/// `//api/2.0/…` routed as `/api/2.0/…`: a client that joins a base URL
/// ending in `/` sends a path that starts with two slashes, and MLflow's
/// server routes it as one. Only the leading run is merged: further on, a
/// doubled slash is part of what was asked (`artifacts//etc/passwd` is an
/// absolute path, refused as MLflow refuses it). Done here, ahead of the
/// router and the request guard, so both see the path that is served.
fn merge_slashes(uri: &mut hyper::Uri) {
    let path = uri.path();
    if !path.starts_with("//") {
        return;
    }
    let mut merged = format!("/{}", path.trim_start_matches('/'));
    if let Some(query) = uri.query() {
        merged.push('?');
        merged.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    let Ok(path_and_query) = merged.parse() else {
        return;
    };
    parts.path_and_query = Some(path_and_query);
    if let Ok(merged) = hyper::Uri::from_parts(parts) {
        *uri = merged;
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    bounds: Bounds,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let Bounds {
        max_connections,
        head_timeout,
        idle_timeout,
    } = bounds;
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was
                    // taken: neither ends the server. Wait a little so a
                    // descriptor shortage does not spin.
                    if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Small request/response pairs (a logged metric) would otherwise wait
        // on Nagle's algorithm against the client's delayed ACK: ~40 ms each.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                merge_slashes(req.uri_mut());
                let mut app = app.clone();
                async move {
                    tower_service::Service::call(&mut app, req.map(axum::body::Body::new)).await
                }
            });
            let io = TokioIo::new(IdleTimeout::new(tcp, idle_timeout));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(head_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(io, service);
            let mut connection = std::pin::pin!(connection);
            let closed_first = tokio::select! {
                _ = connection.as_mut() => false,
                _ = closing.wait_for(|closing| *closing) => true,
            };
            if closed_first {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, connection).await;
            }
            drop(permit);
        });
    }
    let _ = closing_tx.send(true);
    drop(listener);
    // Every connection holds a permit until it ends: wait for them all, for
    // as long as a drain may take.
    let _ = tokio::time::timeout(
        DRAIN_TIMEOUT + Duration::from_millis(500),
        permits.acquire_many(max_connections.max(1) as u32),
    )
    .await;
    Ok(())
}

/// Raises this process's soft limit on open files to its hard limit, so the
/// connection cap, not the descriptor table, is what bounds clients.
/// Returns the limit now in force.
// rlim_t is u64 on Linux, narrower on some targets.
#[allow(clippy::useless_conversion)]
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable rlimit for the duration of
        // the call; getrlimit writes only into it.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: `raised` is a valid rlimit read by the call only.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                return Some(u64::from(raised.rlim_cur));
            }
        }
        Some(u64::from(limit.rlim_cur))
    }
    #[cfg(not(unix))]
    None
}

/// A stream that fails with `TimedOut` once no byte has moved either way
/// for its idle time.
struct IdleTimeout {
    inner: TcpStream,
    idle: Duration,
    /// When a byte last moved.
    last_moved: Instant,
    /// Fires at or before `last_moved + idle`. Progress only records the
    /// time; the timer is moved when it fires early, so a busy connection
    /// never touches the timer wheel per read or write.
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(inner: TcpStream, idle: Duration) -> IdleTimeout {
        IdleTimeout {
            inner,
            idle,
            last_moved: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// Passes on the inner stream's answer: progress moves the deadline;
    /// no progress past the deadline is an error (the deadline's timer
    /// wakes the task to find it).
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        inner: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if inner.is_ready() {
            self.last_moved = Instant::now();
            return inner;
        }
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_moved + self.idle;
            if Instant::now() >= due {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no data moved on the connection for too long",
                )));
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.watch(cx, inner)
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let inner = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, inner)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let inner = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, inner)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, inner)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn leading_slashes_are_merged_and_the_rest_kept() {
        for (given, want) in [
            (
                "//api/2.0/mlflow/experiments/get?experiment_id=0",
                "/api/2.0/mlflow/experiments/get?experiment_id=0",
            ),
            ("///api/v1/runs", "/api/v1/runs"),
            (
                "/api/2.0/mlflow-artifacts/artifacts//etc/passwd",
                "/api/2.0/mlflow-artifacts/artifacts//etc/passwd",
            ),
            ("/p/x?next=//elsewhere", "/p/x?next=//elsewhere"),
            ("/", "/"),
        ] {
            let mut uri: hyper::Uri = given.parse().expect("a valid URI");
            super::merge_slashes(&mut uri);
            assert_eq!(uri.to_string(), want);
        }
    }
}
