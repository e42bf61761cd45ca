//! Live updates: a server-sent event stream per project. The server polls
//! the store's change sequence (cheap: one indexed read) twice a second and
//! sends only the runs that changed, with enough for a chart to fetch just
//! the new points (`/series?after=`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::json;

use crate::AppState;
use crate::api::blocking;
use crate::error::ApiError;

const POLL: Duration = Duration::from_millis(500);

pub async fn events(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let project = params
        .get("project")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::invalid("project", "project is required"))?;
    let (start, _) = blocking(&state, |store| Ok(store.changes_since(i64::MAX)?)).await?;
    let stream = stream::unfold(
        (state, project, start),
        |(state, project, seq)| async move {
            loop {
                tokio::time::sleep(POLL).await;
                let project_for_query = project.clone();
                let polled = blocking(&state, move |store| {
                    let (current, changed) = store.changes_since(seq)?;
                    let changed: Vec<_> = changed
                        .into_iter()
                        .filter(|r| r.project == project_for_query)
                        .collect();
                    Ok((current, changed))
                })
                .await;
                let Ok((current, changed)) = polled else {
                    continue;
                };
                if changed.is_empty() {
                    if current != seq {
                        // Other projects changed: move on without an event.
                        return Some((None, (state, project, current)));
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
                return Some((Some(event), (state, project, current)));
            }
        },
    );
    let stream = futures_util::StreamExt::filter_map(stream, |e| async move { e.map(Ok) });
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}
