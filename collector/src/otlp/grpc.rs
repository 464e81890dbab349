//! OTLP/gRPC receiver: the `TraceService`, `MetricsService` and `LogsService` Export methods,
//! accepting gzip- and zstd-compressed requests.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Buf;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

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
        let admit = |signal| Admit {
            auth: auth.clone(),
            intake: self.intake.clone(),
            signal,
        };
        server
            .add_service(InterceptedService::new(
                ExportServer::<ExportTraceServiceRequest>::new(self.clone(), max_message),
                admit(Signal::Traces),
            ))
            .add_service(InterceptedService::new(
                ExportServer::<ExportMetricsServiceRequest>::new(self.clone(), max_message),
                admit(Signal::Metrics),
            ))
            .add_service(InterceptedService::new(
                ExportServer::<ExportLogsServiceRequest>::new(self.clone(), max_message),
                admit(Signal::Logs),
            ))
    }
}

/// One OTLP `Export` service, for requests of type `R`: what tonic's generated server does
/// (gzip and zstd requests, a message size limit, `Unimplemented` for any other method), but
/// decoding with [`SliceDecoder`].
struct ExportServer<R> {
    receiver: GrpcReceiver,
    max_message: usize,
    accept: EnabledCompressionEncodings,
    request: PhantomData<fn() -> R>,
}

impl<R> Clone for ExportServer<R> {
    fn clone(&self) -> Self {
        Self {
            receiver: self.receiver.clone(),
            max_message: self.max_message,
            accept: self.accept,
            request: PhantomData,
        }
    }
}

impl<R: ExportRequest> ExportServer<R> {
    fn new(receiver: GrpcReceiver, max_message: usize) -> Self {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        accept.enable(CompressionEncoding::Zstd);
        Self {
            receiver,
            max_message,
            accept,
            request: PhantomData,
        }
    }
}

impl<R: ExportRequest> NamedService for ExportServer<R> {
    const NAME: &'static str = R::GRPC_SERVICE;
}

impl<R, B> Service<http::Request<B>> for ExportServer<R>
where
    R: ExportRequest + Sync,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().strip_prefix('/');
        if method.and_then(|m| m.strip_prefix(R::GRPC_SERVICE)) != Some("/Export") {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let server = self.clone();
        Box::pin(async move {
            let codec = ExportCodec::<R>(server.receiver.intake.clone(), PhantomData);
            let mut grpc = Grpc::new(codec)
                .apply_compression_config(server.accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(server.max_message), None);
            Ok(grpc.unary(server, request).await)
        })
    }
}

impl<R: ExportRequest + Sync> UnaryService<R> for ExportServer<R> {
    type Response = R::Response;
    type Future = BoxFuture<Response<R::Response>, Status>;

    fn call(&mut self, request: Request<R>) -> Self::Future {
        let receiver = self.receiver.clone();
        Box::pin(async move { receiver.export(request).await })
    }
}

/// Export requests in, responses out, both protobuf; undecodable requests counted in `Intake`.
struct ExportCodec<R>(Intake, PhantomData<fn() -> R>);

impl<R: ExportRequest> Codec for ExportCodec<R> {
    type Encode = R::Response;
    type Decode = R;
    type Encoder = ProstEncoder<R::Response>;
    type Decoder = SliceDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        SliceDecoder(self.0.clone(), PhantomData)
    }
}

/// Decodes a request from the message's bytes as one slice: tonic hands the decoder its
/// receive buffer, through which prost reads each field about a quarter slower than from a
/// slice (a `BytesMut` keeps its bookkeeping at every step); taking the message out of the
/// buffer is free (the buffer is split, not copied). A message that is not the request is
/// `INVALID_ARGUMENT`, not retryable (OTLP's failure table), as on OTLP/HTTP.
struct SliceDecoder<R>(Intake, PhantomData<fn() -> R>);

impl<R: ExportRequest> Decoder for SliceDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        let message = src.copy_to_bytes(src.remaining());
        R::decode(message.as_ref()).map(Some).map_err(|e| {
            self.0.malformed(R::SIGNAL, Protocol::Grpc);
            status(&IntakeError::undecodable(e))
        })
    }
}
