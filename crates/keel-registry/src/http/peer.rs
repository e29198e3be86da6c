//! `POST /peerreplication/batch/`: a peer's batch of replicated operations (Eureka's wire format).

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use keel_eureka::{
    Format, ReplicationItemResponse, decode_replication_list, encode_replication_response,
};

use super::respond::{BadRequest, bad_request, document};
use crate::engine::Registry;

/// Applies every item in order and answers `{"responseList":[…]}` with one entry per item:
/// 200, 404, 409 with our copy, or 400 for an item that does not decode (the others still apply).
pub(crate) async fn batch(
    State(registry): State<Registry>,
    body: Bytes,
) -> Result<Response, BadRequest> {
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
