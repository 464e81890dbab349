//! `meridian bench`: throughput figures on this machine, each compared with a baseline measured
//! in the same run (these machines are noisy; ratios are what to compare across runs).
//!
//! - `convert`: OTLP protobuf decode (prost, the baseline) against decode + Arrow conversion.
//! - `ingest`: spans/s from a load generator on this machine, over OTLP/gRPC and OTLP/HTTP, into
//!   a standalone pipeline, until every span is visible to SQL.

mod convert;
mod ingest;
mod payload;
mod raw_grpc;

/// Options of `meridian bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: Which,
}

/// The benchmarks.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Which {
    /// Decode-only against decode + convert to Arrow, spans/s on one core.
    Convert {
        /// Spans per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Requests to process per measurement.
        #[arg(long, default_value_t = 500)]
        requests: usize,
    },
    /// End-to-end ingest through a fresh standalone pipeline per protocol (gRPC, HTTP).
    Ingest {
        /// Total spans per protocol.
        #[arg(long, default_value_t = 2_000_000)]
        spans: usize,
        /// Spans per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Concurrent client connections.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Protocols to measure, each against a fresh pipeline: `grpc`, `http`.
        #[arg(long, value_delimiter = ',', default_value = "grpc,http")]
        protocols: Vec<String>,
    },
}

/// Runs the chosen benchmark and prints its figures.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which {
        Which::Convert { batch, requests } => convert::run(batch, requests),
        Which::Ingest {
            spans,
            batch,
            concurrency,
            protocols,
        } => {
            for protocol in &protocols {
                ingest::run(protocol, spans, batch, concurrency).await?;
            }
            Ok(())
        }
    }
}
