//! A gRPC client that sends already-encoded OTLP protobuf bytes, so the load generator does not
//! spend the benchmark's CPU re-encoding the same payloads.

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::Status;

/// Passes message bytes through unchanged in both directions.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// An OTLP trace-service client over one HTTP/2 connection.
pub struct RawTraceClient {
    inner: tonic::client::Grpc<Channel>,
}

impl RawTraceClient {
    /// Connects to `url` (`http://host:port`).
    pub async fn connect(url: String) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url)?.connect().await?;
        Ok(Self {
            inner: tonic::client::Grpc::new(channel),
        })
    }

    /// Calls `TraceService/Export` with an encoded `ExportTraceServiceRequest`.
    pub async fn export(&mut self, body: Bytes) -> Result<(), Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let path = PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        );
        self.inner
            .unary(tonic::Request::new(body), path, RawCodec)
            .await
            .map(|_| ())
    }
}
