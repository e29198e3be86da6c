//! `POST /peerreplication/batch/`: a peer's batch of replicated operations (Eureka's wire format).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use keel_eureka::{
    Format, ReplicationItemResponse, decode_replication_list, encode_replication_response,
};

use super::respond::{BadRequest, bad_request, document};
use crate::cluster::NODE_HEADER;
use crate::engine::Registry;

/// Applies every item in order and answers `{"responseList":[…]}` with one entry per item:
/// 200, 404, 409 with our copy, or 400 for an item that does not decode (the others still apply).
pub(crate) async fn batch(
    State(registry): State<Registry>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, BadRequest> {
    // A node listed among its own peers would apply its writes to itself again.
    if headers
        .get(NODE_HEADER)
        .is_some_and(|v| v.as_bytes() == registry.node_id().as_bytes())
    {
        return Ok(StatusCode::LOOP_DETECTED.into_response());
    }
    let items = decode_replication_list(&body).map_err(bad_request)?;
    let responses: Vec<ReplicationItemResponse> = items
        .into_iter()
        .map(|item| match item {
            Ok(item) => registry.apply_replicated(item),
            Err(e) => {
                tracing::debug!(error = %e, "replication item refused");
                ReplicationItemResponse {
                    status_code: 400,
                    response_entity: None,
                }
            }
        })
        .collect();
    let mut out = Vec::new();
    encode_replication_response(&responses, &mut out);
    Ok(document(Format::Json, out.into()))
}
