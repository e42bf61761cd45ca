//! Live updates: a server-sent event stream per project. The server polls
//! the store's change sequence (cheap: one indexed read) twice a second and
//! sends only the runs that changed, with enough for a chart to fetch just
//! the new points (`/series?after=`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Extension;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::json;

use crate::AppState;
use crate::api::blocking;
use crate::error::ApiError;

const POLL: Duration = Duration::from_millis(500);
const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// Counts the live event streams of each client address, so one client
/// cannot hold an unbounded number of them (each polls the store twice a
/// second). A browser opens one per dashboard tab.
pub struct StreamCounter {
    max_per_client: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open stream; dropping it (the client went away) frees its place.
pub struct StreamSlot {
    client: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl StreamCounter {
    pub fn new(max_per_client: usize) -> StreamCounter {
        StreamCounter {
            max_per_client,
            open: Arc::default(),
        }
    }

    fn take(&self, client: IpAddr) -> Result<StreamSlot, ApiError> {
        let mut open = lock(&self.open);
        let count = open.entry(client).or_insert(0);
        if *count >= self.max_per_client {
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "TOO_MANY_STREAMS",
                message: format!(
                    "this client already has {} live event streams open; close a dashboard tab",
                    self.max_per_client
                ),
                field: None,
                column: None,
            });
        }
        *count += 1;
        Ok(StreamSlot {
            client,
            open: self.open.clone(),
        })
    }
}

/// The counts stay right even if a holder panicked: each change is one
/// statement.
fn lock(open: &Mutex<HashMap<IpAddr, usize>>) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
    open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

pub async fn events(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    viewer: Option<Extension<crate::Viewer>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let viewer = viewer.map(|Extension(v)| v);
    let project = params
        .get("project")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::invalid("project", "project is required"))?;
    // Requests made without a socket (tests driving the router) count as
    // one client.
    let client = peer.map_or(IpAddr::from([0, 0, 0, 0]), |Extension(ConnectInfo(a))| {
        a.ip()
    });
    let slot = state.limits.event_streams.take(client)?;
    let (start, _) = blocking(&state, |store| Ok(store.changes_since(i64::MAX)?)).await?;
    let stream = stream::unfold(
        (state, project, start, slot),
        move |(state, project, seq, slot)| {
            let viewer = viewer.clone();
            async move {
                loop {
                    tokio::time::sleep(POLL).await;
                    let project_for_query = project.clone();
                    let viewer = viewer.clone();
                    let polled = blocking(&state, move |store| {
                        let (current, changed) = store.changes_since(seq)?;
                        let changed: Vec<_> = changed
                            .into_iter()
                            .filter(|r| r.project == project_for_query)
                            .collect();
                        // With --auth, news goes only to someone who may still
                        // read the project; the stream ends when they may not.
                        let allowed = match &viewer {
                            Some(v) if !changed.is_empty() => {
                                v.may_still_read_project(store, &project_for_query)?
                            }
                            _ => true,
                        };
                        Ok((current, changed, allowed))
                    })
                    .await;
                    let Ok((current, changed, allowed)) = polled else {
                        continue;
                    };
                    if !allowed {
                        return None;
                    }
                    if changed.is_empty() {
                        if current != seq {
                            // Other projects changed: move on without an event.
                            return Some((None, (state, project, current, slot)));
                        }
                        continue;
                    }
                    let runs: Vec<_> = changed
                .iter()
                .map(|r| {
                    let metrics: serde_json::Map<String, serde_json::Value> = r
                        .metrics
                        .iter()
                        .map(|(k, s)| (k.clone(), json!({ "count": s.count, "last_step": s.last_step })))
                        .collect();
                    json!({ "id": r.id, "status": r.status.as_str(), "heartbeat_ms": r.heartbeat_ms, "metrics": metrics })
                })
                .collect();
                    let event = Event::default()
                        .event("runs")
                        .data(json!({ "runs": runs }).to_string());
                    return Some((Some(event), (state, project, current, slot)));
                }
            }
        },
    );
    let stream = futures_util::StreamExt::filter_map(stream, |e| async move { e.map(Ok) });
    // A closed tab is noticed only when its stream is next written to, and
    // its slot freed then: a short keep-alive keeps reloads (a benchmark's
    // dozens) from filling the client's allowance with dead streams.
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}
