//! OTLP/gRPC receiver: the `TraceService`, `MetricsService` and `LogsService` Export methods,
//! accepting gzip- and zstd-compressed requests.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{ExportRequest, Intake, IntakeError, Protocol, Sender};
use crate::auth::{Auth, Caller, Scope};

/// Turns a refusal into its gRPC status, with `RetryInfo` when the client may retry.
fn status(e: &IntakeError) -> Status {
    let (_, code) = e.status();
    match e.retry_after() {
        Some(wait) => {
            let details = ErrorDetails::with_retry_info(Some(wait));
            Status::with_error_details(code, e.to_string(), details)
        }
        None => Status::new(code, e.to_string()),
    }
}

/// Checks the `authorization` metadata before the message is decoded, so an unknown caller
/// costs no decoding.
#[derive(Clone)]
struct Authenticate(Auth);

impl Interceptor for Authenticate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let value = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        match self.0.check("otlp_grpc", value, Scope::Ingest) {
            Ok(caller) => {
                let mut request = request;
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            Err(denied) => Err(status(&denied.into())),
        }
    }
}

/// The gRPC service implementations, all backed by one [`Intake`].
#[derive(Clone)]
pub struct GrpcReceiver {
    intake: Intake,
}

impl GrpcReceiver {
    /// A receiver queueing into `intake`.
    pub fn new(intake: Intake) -> Self {
        Self { intake }
    }

    async fn export<R: ExportRequest>(
        &self,
        request: Request<R>,
    ) -> Result<Response<R::Response>, Status> {
        let sender = Sender::of(request.extensions().get::<Caller>(), request.remote_addr());
        match self
            .intake
            .accept(request.get_ref(), Protocol::Grpc, &sender)
            .await
        {
            Ok(accepted) => Ok(Response::new(R::response(&accepted))),
            Err(e) => {
                if let IntakeError::Convert(_) = e {
                    tracing::error!(error = %e, "OTLP/gRPC request could not be converted");
                }
                Err(status(&e))
            }
        }
    }

    /// Adds the three services to a tonic server, with compression, a message size limit and
    /// `auth` (an `ingest` token required when it has tokens).
    pub fn add_to(
        self,
        server: &mut tonic::transport::Server,
        max_message: usize,
        auth: Auth,
    ) -> Router {
        let traces = TraceServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(max_message);
        let metrics = MetricsServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(max_message);
        let logs = LogsServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(max_message);
        let guard = Authenticate(auth);
        server
            .add_service(InterceptedService::new(traces, guard.clone()))
            .add_service(InterceptedService::new(metrics, guard.clone()))
            .add_service(InterceptedService::new(logs, guard))
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        GrpcReceiver::export(self, request).await
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        GrpcReceiver::export(self, request).await
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        GrpcReceiver::export(self, request).await
    }
}
