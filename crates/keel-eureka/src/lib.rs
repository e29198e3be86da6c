//! Eureka's wire model and its JSON/XML codecs. Pure: no I/O, no async, no HTTP.
//!
//! A server uses it in four ways:
//! - decode a register body with [`decode_instance`] (pick the [`Format`] from
//!   `Content-Type` with [`Format::from_content_type`], falling back to [`Format::sniff`]);
//! - encode responses, either whole ([`encode_applications`], [`encode_application`],
//!   [`encode_instance`]) or by splicing cached per-instance fragments
//!   ([`encode_instance_fragment`] + [`ApplicationsWriter`] / [`ApplicationWriter`] /
//!   [`write_instance_document`]); pick the format with [`Format::from_accept`];
//! - keep `apps__hashcode` with [`StatusCounts`];
//! - exchange peer-replication batches ([`decode_replication_list`],
//!   [`encode_replication_response`], and the reverse pair for the sending side).
//!
//! Architecture invariant: this crate depends on no runtime and performs no I/O.

mod encode;
mod error;
mod format;
mod hashcode;
pub mod json;
mod metadata;
mod model;
mod name;
mod replication;
mod status;
mod wire;
pub mod xml;

pub use encode::{
    ApplicationScope, ApplicationWriter, ApplicationsWriter, encode_application,
    encode_applications, encode_instance, encode_instance_fragment, write_instance_document,
};
pub use error::DecodeError;
pub use format::Format;
pub use hashcode::StatusCounts;
pub use model::{
    AMAZON_DATA_CENTER_CLASS, Application, Applications, DEFAULT_DATA_CENTER_CLASS, DataCenterInfo,
    InstanceInfo, LeaseInfo, Metadata, Port, RegisterError,
};
pub use name::{AppName, InstanceId, MAX_NAME_BYTES, NameError};
pub use replication::{
    ReplicationAction, ReplicationItem, ReplicationItemResponse, decode_replication_list,
    decode_replication_response, encode_replication_list, encode_replication_response,
};
pub use status::{ActionType, InstanceStatus};

/// Decodes a register body (`{"instance":{...}}` or `<instance>...</instance>`).
pub fn decode_instance(format: Format, body: &[u8]) -> Result<InstanceInfo, DecodeError> {
    match format {
        Format::Json => json::decode_instance(body),
        Format::Xml => xml::decode_instance(body),
    }
}

/// Decodes an `application` document.
pub fn decode_application(format: Format, body: &[u8]) -> Result<Application, DecodeError> {
    match format {
        Format::Json => json::decode_application(body),
        Format::Xml => xml::decode_application(body),
    }
}

/// Decodes an `applications` document (a full registry or a delta), e.g. a peer's
/// `GET /apps` during start-up sync.
pub fn decode_applications(format: Format, body: &[u8]) -> Result<Applications, DecodeError> {
    match format {
        Format::Json => json::decode_applications(body),
        Format::Xml => xml::decode_applications(body),
    }
}
