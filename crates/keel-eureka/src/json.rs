//! Eureka's JSON dialect: decoding request bodies and encoding responses.

pub(crate) mod encode;
pub(crate) mod lenient;

use crate::error::DecodeError;
use crate::model::{Application, Applications, InstanceInfo};
use crate::wire::{ApplicationWire, ApplicationsWire, InstanceWire};

/// Decodes `{"instance":{...}}` (a bare instance object is accepted too).
pub fn decode_instance(body: &[u8]) -> Result<InstanceInfo, DecodeError> {
    let wire: InstanceWire = serde_json::from_slice(body)?;
    wire.unwrap_root().into_model("instance")
}

/// Decodes `{"application":{...}}` (or a bare application object).
pub fn decode_application(body: &[u8]) -> Result<Application, DecodeError> {
    let wire: ApplicationWire = serde_json::from_slice(body)?;
    wire.unwrap_root().into_model("application")
}

/// Decodes `{"applications":{...}}` (or a bare applications object): a full registry or a delta.
pub fn decode_applications(body: &[u8]) -> Result<Applications, DecodeError> {
    let wire: ApplicationsWire = serde_json::from_slice(body)?;
    wire.unwrap_root().into_model("applications")
}
