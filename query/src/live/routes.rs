//! `GET /v1/live`: the live state as server-sent events (one `state` event
//! at once, then one per refresh), and `GET /v1/live/state`: the same state
//! once, as JSON, for scripts.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::Query;
use crate::live::LiveState;

/// Streams the live state. A slow client skips states rather than
/// queueing them: it always gets the newest.
pub async fn sse(
    State(query): State<Arc<Query>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = query.live.subscribe();
    // The first event carries the current state, even if it never changes.
    rx.mark_changed();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let state = rx.borrow_and_update().clone();
        let event = match serde_json::to_string(&*state) {
            Ok(json) => Event::default().event("state").data(json),
            Err(e) => {
                tracing::error!(error = %e, "the live state does not serialise");
                Event::default().comment("state unavailable")
            }
        };
        Some((Ok(event), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The current live state as JSON.
pub async fn state(State(query): State<Arc<Query>>) -> impl IntoResponse {
    let state = query.live.current();
    Json(LiveState::clone(&state))
}
