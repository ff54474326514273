//! `/api/v1/sweeps/{id}/events`: server-sent events fed by the client service's watch
//! stream, the one `sweep watch` follows (woken by every change the coordinator makes to
//! the sweep, at most every 2 s otherwise). The first event carries every trial; each
//! later one the trials that changed. Each is `{"sweep": <sweep status JSON>,
//! "trials": [<trial JSON>...], "finished": bool}`; after a finished one the stream ends
//! and the page stops listening. An unknown sweep is a 404 before the stream starts (the
//! watch call checks it).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use sweep_proto as pb;
use sweep_proto::client_service_server::ClientService;
use sweep_view::json as shapes;
use sweep_view::objectives::Rules;

use super::{request, ApiError, Token};
use crate::state::AppState;

pub async fn events(State(state): State<Arc<AppState>>, Token(t): Token, Path(sweep_id): Path<String>) -> Response {
    let watch = super::api::client(&state)
        .watch_sweep(request(pb::WatchSweepRequest { sweep_id, omit_config: true }, &t))
        .await;
    let stream = match watch {
        Ok(r) => r.into_inner(),
        Err(s) => return ApiError::from(s).into_response(),
    };
    // What ranks trials, from the sweep's file in the first event (as `sweep watch` does).
    let mut rules: Option<Rules> = None;
    let events = stream.map(move |ev| {
        let data = match ev {
            Ok(ev) => {
                let changed: Vec<&pb::Trial> = ev.changed.iter().collect();
                let rules = &*rules.get_or_insert_with(|| match &ev.sweep {
                    Some(s) => Rules::of(s),
                    None => Rules { objectives: vec![], constraints: vec![] },
                });
                json!({
                    "sweep": ev.sweep.as_ref().map(shapes::sweep_json),
                    "trials": shapes::trials_json_ruled(&changed, rules)["trials"],
                    "finished": ev.finished,
                })
            }
            Err(s) => json!({"error": s.message()}),
        };
        Ok::<_, Infallible>(Event::default().data(data.to_string()))
    });
    Sse::new(events).into_response()
}
