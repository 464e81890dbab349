//! `meridian`: the command line. Parses flags, loads the configuration and wires the stages;
//! the stages themselves live in the `meridian-collector` and `meridian-analyzer` crates.

mod allocator;
mod bench;
mod config;
mod demo;
mod evaluate;
mod offline;
mod run;

use clap::{Parser, Subcommand};

use crate::config::{MeridianConfig, Overrides};

/// Observability and anomaly detection for multi-region API gateways.
#[derive(Parser)]
#[command(name = "meridian", version, about)]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Collector and analyzer in one process: OTLP in, SQL out, no broker needed.
    Standalone,
    /// A regional collector forwarding to a separate analyzer.
    Collector {
        /// Base URL of the analyzer's HTTP API, e.g. http://analyzer:4380.
        #[arg(long, env = "MERIDIAN_FORWARD_TO")]
        forward_to: Option<String>,
    },
    /// The central analyzer: stores what collectors forward and answers SQL.
    Analyzer,
    /// Beside a gateway: applies the analyzer's routing weights (Envoy, Traefik) and hands
    /// scaling recommendations to a hook.
    Agent {
        /// Base URL of the analyzer's HTTP API [default: http://127.0.0.1:4380].
        #[arg(long, env = "MERIDIAN_ANALYZER_URL")]
        analyzer: Option<String>,
        /// Name reported to the analyzer [default: the host name].
        #[arg(long, env = "MERIDIAN_AGENT_ID")]
        id: Option<String>,
        /// Print what would change instead of changing the gateway.
        #[arg(long)]
        dry_run: bool,
    },
    /// Standalone plus a simulated fleet of gateways in three regions, with a live table.
    Demo(demo::DemoArgs),
    /// Measure ingest and conversion throughput on this machine.
    Bench(bench::BenchArgs),
    /// Score a `timestamp,value` CSV file (or a tree of them) with the streaming detector.
    Detect(offline::detect::DetectArgs),
    /// Rolling-origin forecast evaluation of a `timestamp,value` CSV file (or a tree of them).
    Forecast(offline::forecast::ForecastArgs),
    /// Measure the detectors on labelled data (NAB).
    Evaluate(evaluate::EvaluateArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MERIDIAN_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads allocate anything.
    allocator::tune();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_command())
}

async fn run_command() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    let mut config = MeridianConfig::load(&cli.overrides)?;
    match cli.command {
        Command::Standalone => {
            if let Some(a) = cli.overrides.http_addr {
                config.analyzer.http_addr = a;
            }
            run::standalone(config).await
        }
        Command::Collector { forward_to } => {
            if let Some(a) = cli.overrides.http_addr {
                config.collector.http_addr = a;
            }
            if let Some(url) = forward_to {
                config.collector.network.url = url;
            }
            run::collector(config).await
        }
        Command::Analyzer => {
            if let Some(a) = cli.overrides.http_addr {
                config.analyzer.http_addr = a;
            }
            run::analyzer(config).await
        }
        Command::Agent {
            analyzer,
            id,
            dry_run,
        } => {
            if let Some(a) = cli.overrides.http_addr {
                config.agent.listen = a;
            }
            if let Some(url) = analyzer {
                config.agent.analyzer = url;
            }
            if let Some(id) = id {
                config.agent.id = id;
            }
            config.agent.dry_run |= dry_run;
            run::agent(config).await
        }
        Command::Demo(args) => {
            if let Some(a) = cli.overrides.http_addr {
                config.analyzer.http_addr = a;
            }
            demo::run(config, args).await
        }
        Command::Bench(args) => {
            let detect = &config.analyzer.pipeline.detect.series;
            bench::run(args, detect, config.collector.wire_encoding).await
        }
        Command::Detect(args) => {
            offline::detect::run(&args, &config.analyzer.pipeline.detect.series)
        }
        Command::Forecast(args) => offline::forecast::run(&args),
        Command::Evaluate(args) => match args.which {
            evaluate::Which::Nab(nab) => {
                evaluate::nab::run(&nab, &config.analyzer.pipeline.detect.series)
            }
        },
    }
}
