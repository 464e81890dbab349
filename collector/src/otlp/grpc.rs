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
use std::sync::Arc;

use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{ExportRequest, Intake, IntakeError, Protocol, Sender};
use crate::auth::{Auth, Caller, Scope};
use crate::memory::{Reservation, GRPC_REQUEST_RESERVATION};
use crate::signal::Signal;

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

/// Runs before the message is read and decoded, so that neither an unknown caller nor a request
/// the memory limit has no room for costs any decoding: checks the `authorization` metadata,
/// then admits the request (a disk buffer with room, memory reserved until it is answered).
#[derive(Clone)]
struct Admit {
    auth: Auth,
    intake: Intake,
    signal: Signal,
}

/// A gRPC request's memory reservation, carried in its extensions until it is answered.
#[derive(Clone)]
struct Held(#[allow(dead_code)] Arc<Reservation>);

impl Interceptor for Admit {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let value = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        let caller = self
            .auth
            .check("otlp_grpc", value, Scope::Ingest)
            .map_err(|denied| status(&denied.into()))?;
        let reservation = self
            .intake
            .admit(self.signal, Protocol::Grpc, GRPC_REQUEST_RESERVATION)
            .map_err(|e| status(&e))?;
        let mut request = request;
        request.extensions_mut().insert(caller);
        request.extensions_mut().insert(Held(Arc::new(reservation)));
        Ok(request)
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
        let logs = LogsServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(max_message);
        let admit = |signal| Admit {
            auth: auth.clone(),
            intake: self.intake.clone(),
            signal,
        };
        server
            .add_service(InterceptedService::new(traces, admit(Signal::Traces)))
            .add_service(InterceptedService::new(metrics, admit(Signal::Metrics)))
            .add_service(InterceptedService::new(logs, admit(Signal::Logs)))
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
