//! OTLP receivers. `grpc` and `http` only translate between their protocol and [`Intake`], which
//! converts a decoded request to Arrow and queues it; `json` and `decompress` are codecs.

pub mod decompress;
pub mod grpc;
pub mod http;
mod intake;
pub mod json;
mod request;

pub use intake::{Accepted, Intake, IntakeError, Protocol};
pub use request::ExportRequest;

#[cfg(test)]
mod json_tests;
