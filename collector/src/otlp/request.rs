//! What the receivers need to know of each OTLP Export request type, so one generic code path
//! serves traces, metrics and logs.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::{json, Value};

use super::json::{self, JsonError};
use crate::convert::{self, ConvertError, Converted};
use crate::signal::Signal;

/// What happened to an accepted request: how many items were rejected as invalid, and why.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Items rejected (the rest are queued).
    pub rejected: i64,
    /// Why the first rejected item was rejected.
    pub error_message: String,
}

/// An OTLP Export request: its signal, conversion, JSON decoding and response.
pub trait ExportRequest: prost::Message + Default + Sized + Send + 'static {
    /// The response message of the same service.
    type Response: prost::Message + Default + Send + 'static;
    /// The signal the request carries.
    const SIGNAL: Signal;
    /// The `partial_success` field holding the rejected count, in OTLP/JSON spelling.
    const REJECTED_FIELD: &'static str;
    /// The gRPC service whose `Export` method takes the request.
    const GRPC_SERVICE: &'static str;

    /// Converts the request to Arrow, stamping the region.
    fn to_arrow(&self, region: &str) -> Result<Converted, ConvertError>;
    /// Decodes the request from OTLP/JSON.
    fn decode_json(body: &[u8]) -> Result<Self, JsonError>;
    /// The protobuf response for an accepted request.
    fn response(accepted: &Accepted) -> Self::Response;
    /// Number of items (spans, points, records) in the request.
    fn items(&self) -> usize;

    /// The OTLP/JSON response for an accepted request.
    fn response_json(accepted: &Accepted) -> Value {
        if accepted.rejected == 0 && accepted.error_message.is_empty() {
            return json!({});
        }
        json!({ "partialSuccess": {
            Self::REJECTED_FIELD: accepted.rejected.to_string(),
            "errorMessage": accepted.error_message,
        }})
    }
}

fn partial<T>(accepted: &Accepted, make: impl FnOnce(i64, String) -> T) -> Option<T> {
    (accepted.rejected > 0 || !accepted.error_message.is_empty())
        .then(|| make(accepted.rejected, accepted.error_message.clone()))
}

impl ExportRequest for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    const SIGNAL: Signal = Signal::Traces;
    const REJECTED_FIELD: &'static str = "rejectedSpans";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";

    fn to_arrow(&self, region: &str) -> Result<Converted, ConvertError> {
        convert::traces_to_arrow(self, region)
    }
    fn decode_json(body: &[u8]) -> Result<Self, JsonError> {
        json::decode_traces(body)
    }
    fn response(accepted: &Accepted) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: partial(accepted, |rejected_spans, error_message| {
                ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        }
    }
    fn items(&self) -> usize {
        self.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }
}

impl ExportRequest for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const SIGNAL: Signal = Signal::Metrics;
    const REJECTED_FIELD: &'static str = "rejectedDataPoints";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";

    fn to_arrow(&self, region: &str) -> Result<Converted, ConvertError> {
        convert::metrics_to_arrow(self, region)
    }
    fn decode_json(body: &[u8]) -> Result<Self, JsonError> {
        json::decode_metrics(body)
    }
    fn response(accepted: &Accepted) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: partial(accepted, |rejected_data_points, error_message| {
                ExportMetricsPartialSuccess {
                    rejected_data_points,
                    error_message,
                }
            }),
        }
    }
    fn items(&self) -> usize {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        self.resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.len(),
                Some(Data::Sum(s)) => s.data_points.len(),
                Some(Data::Histogram(h)) => h.data_points.len(),
                Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                Some(Data::Summary(s)) => s.data_points.len(),
                None => 1,
            })
            .sum()
    }
}

impl ExportRequest for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    const SIGNAL: Signal = Signal::Logs;
    const REJECTED_FIELD: &'static str = "rejectedLogRecords";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";

    fn to_arrow(&self, region: &str) -> Result<Converted, ConvertError> {
        convert::logs_to_arrow(self, region)
    }
    fn decode_json(body: &[u8]) -> Result<Self, JsonError> {
        json::decode_logs(body)
    }
    fn response(accepted: &Accepted) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: partial(accepted, |rejected_log_records, error_message| {
                ExportLogsPartialSuccess {
                    rejected_log_records,
                    error_message,
                }
            }),
        }
    }
    fn items(&self) -> usize {
        self.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum()
    }
}
