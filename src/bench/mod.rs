//! `meridian bench`: throughput figures on this machine, each compared with a baseline measured
//! in the same run (these machines are noisy; ratios are what to compare across runs).
//!
//! - `convert`: OTLP protobuf decode (prost, the baseline) against decode + Arrow conversion.
//! - `ingest`: spans/s from a load generator on this machine, over OTLP/gRPC and OTLP/HTTP, into
//!   a standalone pipeline, until every span is visible to SQL; with `--kafka-brokers`, through
//!   a disk-buffered collector, Kafka and a consuming analyzer, against the in-process baseline.
//! - `collector`: CPU per span of a `meridian collector` process alone (disk buffer, Kafka sink),
//!   as spans/s per core, against the decode-only rate.
//! - `freshness`: export-to-visible-in-SQL latency percentiles, in-process and through Kafka.
//! - `wire`: bytes per span of the Kafka messages against OTLP protobuf + zstd.
//! - `detect`: streaming detector update cost and memory per series against a windowed
//!   Gaussian z-score.
//! - `query`: gateway questions over 10M spans, Meridian's SQL API against DuckDB on the same
//!   Parquet files.

mod collector;
mod convert;
mod cpu;
mod detect;
mod figures;
mod ingest;
mod payload;
mod query;
mod raw_grpc;
mod wire;

/// Options of `meridian bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: Which,
}

/// The load generator's clients, shared by the ingest and collector benchmarks.
#[derive(Clone, Debug, clap::Args)]
pub struct Clients {
    /// Spans per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Protocols to measure, each against a fresh pipeline or collector: `grpc`, `http`.
    #[arg(long, value_delimiter = ',', default_value = "grpc,http")]
    protocols: Vec<String>,
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
        #[command(flatten)]
        clients: Clients,
        /// Also measure through Kafka at these brokers (disk buffer + Kafka + consumer), in the
        /// collector's wire encoding (`--wire-encoding`).
        #[arg(long)]
        kafka_brokers: Option<String>,
        /// Also measure (in-process) with this many heavy SQL queries running throughout, and
        /// report the ratio to the run without.
        #[arg(long, default_value_t = 0)]
        query_load: usize,
    },
    /// CPU per span of a `meridian collector` child process alone (disk buffer with fsync
    /// "always", Kafka sink): spans per CPU-second, against prost's decode-only rate.
    Collector {
        /// Kafka brokers of the collector's sink.
        #[arg(long, env = "MERIDIAN_KAFKA_BROKERS")]
        kafka_brokers: String,
        /// Spans to send (after a one-request warm-up).
        #[arg(long, default_value_t = 1_000_000)]
        spans: usize,
        #[command(flatten)]
        clients: Clients,
    },
    /// Export-to-visible-in-SQL latency, in-process and (with `--kafka-brokers`) through Kafka.
    Freshness {
        /// Samples per transport.
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Spans per sample request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Kafka brokers for the Kafka transport.
        #[arg(long)]
        kafka_brokers: Option<String>,
    },
    /// Bytes per item (spans, points, log records) of both wire encodings against OTLP
    /// protobuf + zstd.
    Wire {
        /// Batch sizes (spans per batch).
        #[arg(long, value_delimiter = ',', default_value = "100,512,1000,8192")]
        batches: Vec<usize>,
        /// zstd level of the OTLP baseline.
        #[arg(long, default_value_t = 3)]
        zstd_level: i32,
    },
    /// Streaming detector cost: series-points/s on one core and memory per series.
    Detect {
        /// Series updated side by side.
        #[arg(long, default_value_t = 1000)]
        series: usize,
        /// Points per series (2016 = one week at 5 minutes).
        #[arg(long, default_value_t = 2016)]
        points: usize,
    },
    /// Gateway questions over a generated dataset: Meridian (SQL API) against DuckDB.
    Query {
        /// Spans in the dataset.
        #[arg(long, default_value_t = 10_000_000)]
        spans: usize,
        /// Where the dataset is kept (generated once, reused by later runs).
        #[arg(long, default_value = "meridian-bench-query")]
        dir: std::path::PathBuf,
        /// A Python with the `duckdb` package.
        #[arg(long, env = "MERIDIAN_PYTHON", default_value = "python3")]
        python: String,
        /// DuckDB's side of the comparison, a Python script (kept out of the binary).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-duckdb.py"))]
        duckdb_script: std::path::PathBuf,
        /// Timed runs per question (the median is reported), after one warm-up.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

impl Which {
    /// The subcommand's name, as the figures line gives it.
    fn name(&self) -> &'static str {
        match self {
            Which::Convert { .. } => "convert",
            Which::Ingest { .. } => "ingest",
            Which::Collector { .. } => "collector",
            Which::Freshness { .. } => "freshness",
            Which::Wire { .. } => "wire",
            Which::Detect { .. } => "detect",
            Which::Query { .. } => "query",
        }
    }
}

/// Runs the chosen benchmark and prints its figures, ending with the one machine-readable line
/// of them ([`figures::Figures`]).
pub async fn run(
    args: BenchArgs,
    detect: &meridian_analyzer::detect::SeriesConfig,
    encoding: meridian_collector::wire::Encoding,
) -> anyhow::Result<()> {
    let mut figures = figures::Figures::new(args.which.name());
    measure(args.which, detect, encoding, &mut figures).await?;
    println!("{}", figures.line());
    Ok(())
}

async fn measure(
    which: Which,
    detect: &meridian_analyzer::detect::SeriesConfig,
    encoding: meridian_collector::wire::Encoding,
    figures: &mut figures::Figures,
) -> anyhow::Result<()> {
    match which {
        Which::Convert { batch, requests } => convert::run(batch, requests, figures),
        Which::Detect { series, points } => detect::run(series, points, detect, figures),
        Which::Ingest {
            spans,
            clients:
                Clients {
                    batch,
                    concurrency,
                    protocols,
                },
            kafka_brokers,
            query_load,
        } => {
            // The baseline of the same run: prost decoding the same payloads on one core, before
            // and after the pipelines ran (the better of the two, as the machine is noisy).
            let payloads = ingest::trace_payloads(batch);
            let mut decode = convert::decode_rate(&payloads, 200, batch)?;
            let mut rates = Vec::new();
            for protocol in &protocols {
                let load = ingest::Load {
                    protocol,
                    spans,
                    batch,
                    concurrency,
                    query_load: 0,
                };
                let measured = ingest::run(&load, &ingest::Transport::InProcess).await?;
                let direct = measured.rate;
                figures.add(format!("{protocol}_in_process_spans_per_s"), direct);
                figures.add(
                    format!("{protocol}_in_process_spans_per_cpu_s"),
                    measured.per_cpu_s,
                );
                rates.push((protocol, direct));
                if query_load > 0 {
                    let loaded = ingest::Load { query_load, ..load };
                    let under = ingest::run(&loaded, &ingest::Transport::InProcess)
                        .await?
                        .rate;
                    println!(
                        "{protocol:>4}: ingest under {query_load} query loops / alone, throughput ratio {:.2}",
                        under / direct
                    );
                    figures.add(format!("{protocol}_under_queries_spans_per_s"), under);
                    figures.add(format!("{protocol}_under_queries_ratio"), under / direct);
                }
                if let Some(brokers) = &kafka_brokers {
                    let kafka =
                        ingest::run(&load, &ingest::Transport::Kafka(brokers.clone(), encoding))
                            .await?;
                    figures.add(format!("{protocol}_kafka_spans_per_cpu_s"), kafka.per_cpu_s);
                    let kafka = kafka.rate;
                    println!(
                        "{protocol:>4}: kafka / in-process throughput ratio {:.2}",
                        kafka / direct
                    );
                    figures.add(format!("{protocol}_kafka_spans_per_s"), kafka);
                    figures.add(
                        format!("{protocol}_kafka_ratio_vs_in_process"),
                        kafka / direct,
                    );
                }
            }
            decode = decode.max(convert::decode_rate(&payloads, 200, batch)?);
            println!("decode-only baseline (prost, one core, same payloads): {decode:.0} spans/s");
            figures.add("decode_spans_per_s", decode);
            for (protocol, direct) in rates {
                println!(
                    "{protocol:>4}: in-process end to end / decode-only = {:.2}",
                    direct / decode
                );
                figures.add(
                    format!("{protocol}_in_process_ratio_vs_decode"),
                    direct / decode,
                );
            }
            Ok(())
        }
        Which::Collector {
            kafka_brokers,
            spans,
            clients,
        } => {
            for protocol in &clients.protocols {
                let load = collector::CollectorLoad {
                    brokers: &kafka_brokers,
                    protocol,
                    spans,
                    batch: clients.batch,
                    concurrency: clients.concurrency,
                };
                collector::run(&load, figures).await?;
            }
            Ok(())
        }
        Which::Freshness {
            samples,
            batch,
            kafka_brokers,
        } => {
            ingest::freshness(&ingest::Transport::InProcess, samples, batch, figures).await?;
            if let Some(brokers) = kafka_brokers {
                let kafka = ingest::Transport::Kafka(brokers, encoding);
                ingest::freshness(&kafka, samples, batch, figures).await?;
            }
            Ok(())
        }
        Which::Wire {
            batches,
            zstd_level,
        } => wire::run(&batches, zstd_level, figures),
        Which::Query {
            spans,
            dir,
            python,
            duckdb_script,
            runs,
        } => query::run(spans, &dir, (&python, &duckdb_script), runs, figures).await,
    }
}
