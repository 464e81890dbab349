//! The receive stage: OTLP/gRPC and OTLP/HTTP receivers, configured by [`OtlpConfig`]. `grpc`
//! and `http` only translate between their protocol and [`Intake`], which converts a decoded
//! request to Arrow and queues it; `json` and `decompress` are codecs.

pub mod builders;
mod config;
pub mod decompress;
pub mod grpc;
pub mod http;
mod intake;
pub mod json;
mod limit;
mod request;

pub use config::{OtlpConfig, Receivers};
pub use intake::{Intake, IntakeError, Protocol, Refused};
pub use limit::{RateLimitConfig, RateLimiter, Sender};
pub use request::{Accepted, ExportRequest};

#[cfg(test)]
mod json_tests;
