//! `meridian demo`: the standalone pipeline, three regional collectors, a simulated gateway fleet
//! exporting through the real OTLP exporter, a diurnal load shape, one scripted incident, and a
//! live per-region table computed by SQL.

pub mod dataset;
mod gateway;
mod health;
mod history;
mod live;
pub mod traffic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use meridian_collector::auth::Auth;
use meridian_collector::memory::MemoryLimit;
use meridian_collector::Destination;
use prometheus::Registry;
use rand::SeedableRng;

use crate::config::MeridianConfig;
use gateway::{Condition, Gateway, Telemetry, Transport};

/// Options of `meridian demo`.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Stop after this long (e.g. `90s`, `10m`); runs until Ctrl-C when absent.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Requests per second per region at the daily mean.
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// Length of one simulated day (the diurnal load cycle); the forecaster's season unless
    /// `[analyzer.forecast]` sets one.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub day: Duration,
    /// When the incident starts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
    pub incident_after: Duration,
    /// Run healthy traffic only, with no incident (for counting false recommendations).
    #[arg(long)]
    pub no_incident: bool,
    /// How long the incident lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "90s")]
    pub incident_for: Duration,
    /// Region hit by the incident.
    #[arg(long, default_value = "eu-west-1")]
    pub incident_region: String,
    /// Healthy history generated before the live traffic starts, so the detectors and
    /// forecasters have learnt the fleet's normal behaviour (`0s`: none).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    pub history: Duration,
    /// How often the live table is refreshed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub refresh: Duration,
}

/// Regions of the simulated fleet, each exporting over a different OTLP encoding.
const FLEET: [(&str, Transport); 3] = [
    ("us-east-1", Transport::Grpc),
    ("eu-west-1", Transport::HttpProtobuf),
    ("ap-southeast-2", Transport::HttpJson),
];

/// Runs the demo until `--duration` passes or Ctrl-C.
pub async fn run(mut config: MeridianConfig, args: DemoArgs) -> anyhow::Result<()> {
    let capacity = &mut config.analyzer.pipeline.recommend.capacity;
    // The simulated fleet has no autoscaler exporting its instance count: unless configured,
    // each region runs 4 instances of 30 req/s — fewer than the daily peak's forecast upper
    // bound with one region lost (N−1) needs at 70% utilisation, so the capacity path shows a
    // `scale_out` ticket for each region early in the run (about 8 are needed: 60 req/s at the
    // peak, its 95% upper bound and half a lost region's share, at 21 req/s an instance).
    if capacity.instances.is_empty() && capacity.instances_metric.is_empty() {
        for (region, _) in FLEET {
            capacity.instances.insert(region.to_owned(), 4);
        }
        if capacity.capacity_per_instance == 0.0 {
            capacity.capacity_per_instance = 30.0;
        }
    }
    // The simulated day is minutes long: unless configured, the forecaster's season is that day
    // (it looks for two of them in the history) and it refits ten times a day, so forecasts
    // follow the diurnal cycle as a production forecaster follows a real one.
    let forecast = &mut config.analyzer.pipeline.forecast;
    let defaults = meridian_analyzer::forecast::live::ForecastConfig::default();
    if forecast.season == defaults.season {
        forecast.season = args.day;
    }
    if forecast.refit == defaults.refit {
        forecast.refit = (args.day / 10).max(Duration::from_secs(10));
    }
    let registry = Registry::new();
    let data_dir = config.data_dir();
    let analyzer = config.analyzer.build(&data_dir, &registry).await?;
    let sink = analyzer.sink();
    let engine = analyzer.engine();
    let analyzer = analyzer.start().await?;
    println!(
        "Meridian console: http://{}/  (open it in a browser)\n",
        loopback(analyzer.http_addr)
    );

    // Every collector probes every region's gateway, unless the configuration lists probes.
    let regions: Vec<&str> = FLEET.iter().map(|(r, _)| *r).collect();
    let health = Arc::new(health::HealthEndpoints::start(&regions).await?);
    if config.collector.probes.is_empty() {
        config.collector.probes = health.probes();
    }
    let mut collectors = Vec::new();
    let mut gateways = Vec::new();
    for (i, (region, transport)) in FLEET.iter().enumerate() {
        let mut c = config.collector.clone();
        c.region = (*region).to_owned();
        // The first region uses the configured OTLP ports so a real gateway can join the demo.
        if i > 0 {
            c.otlp.grpc_addr.set_port(0);
            c.otlp.http_addr.set_port(0);
        }
        let regional_registry = if i == 0 {
            registry.clone()
        } else {
            Registry::new()
        };
        let destination = Destination::InProcess(Arc::clone(&sink));
        let collector = c
            .start(
                destination,
                &data_dir,
                &regional_registry,
                &Auth::open(),
                &MemoryLimit::unlimited(),
            )
            .await?;
        let grpc = format!("http://{}", loopback(collector.grpc_addr));
        let http = format!("http://{}", loopback(collector.http_addr));
        let telemetry = Telemetry::new(
            Gateway::resource(region),
            *transport,
            &grpc,
            &http,
            Duration::from_secs(1),
        )
        .with_context(|| format!("building the {region} exporter"))?;
        println!(
            "  {region:<15} gateway → collector {} ({})",
            collector.grpc_addr,
            transport.label()
        );
        gateways.push((region.to_string(), Gateway::new(region, telemetry)));
        collectors.push(collector);
    }
    let sql_url = format!("http://{}/api/v1/sql", loopback(analyzer.http_addr));
    if args.no_incident {
        println!("\nMeridian demo: 3 regions, healthy traffic, no incident.");
    } else {
        println!(
            "\nMeridian demo: 3 regions, incident in {} at +{}s for {}s.",
            args.incident_region,
            args.incident_after.as_secs(),
            args.incident_for.as_secs()
        );
    }
    println!(
        "Routing the analyzer recommends: curl -s http://{}/api/v1/routing",
        loopback(analyzer.http_addr)
    );
    println!("Query it yourself while it runs:");
    println!("  curl -s {sql_url} -H 'content-type: application/json' \\");
    println!("    -d '{{\"query\": \"SELECT region, count(*) FROM spans GROUP BY region\"}}'");
    if let Some(pg) = analyzer.pg_addr {
        println!(
            "  psql -h {} -p {} -U meridian -c 'SELECT region, count(*) FROM spans GROUP BY region'",
            loopback(pg).ip(),
            pg.port()
        );
    }
    println!();

    // The diurnal cycle runs from here, through the generated history into the live traffic.
    let day_origin = Instant::now();
    if !args.history.is_zero() {
        let made = history::backfill(&sink, &args, std::time::SystemTime::now())
            .await
            .context("generating the demo's history")?;
        println!(
            "Generated {} of healthy history ({made} spans) for the detectors to learn from.\n",
            humantime::format_duration(args.history)
        );
    }
    let started = Instant::now();
    let onset = (!args.no_incident).then(|| std::time::SystemTime::now() + args.incident_after);
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn(drive_load(
        gateways,
        Arc::clone(&health),
        args.clone(),
        (started, day_origin),
        stop.clone(),
    ));
    let table = tokio::spawn(live::print_loop(
        engine,
        live::Timing {
            refresh: args.refresh,
            started,
            onset,
            interval: config.analyzer.pipeline.derive.interval,
        },
        stop.clone(),
    ));
    let limit = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = limit => {}
        _ = crate::run::shutdown_signal() => {}
    }
    stop.cancel();
    let gateways = load.await.context("load generator panicked")?;
    for (region, g) in &gateways {
        if let Err(e) = g.shutdown() {
            tracing::warn!(%region, error = %e, "gateway exporter did not flush cleanly");
        }
    }
    let table = table.await;
    let mut stopped = Ok(());
    for c in collectors {
        stopped = stopped.and(c.shutdown().await);
    }
    let analyzer = analyzer.shutdown().await;
    table.context("the live table panicked")?;
    stopped.context("stopping a collector")?;
    analyzer.context("stopping the analyzer")?;
    println!(
        "\nDemo data is in {}. `meridian standalone` serves it again.",
        config.data_dir().display()
    );
    Ok(())
}

fn loopback(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Load factor of the diurnal cycle `elapsed_s` seconds after the demo started (negative:
/// before, for the history): 0.5 at night to 1.5 at midday.
fn diurnal(elapsed_s: f64, day: Duration) -> f64 {
    let phase = elapsed_s / day.as_secs_f64().max(1.0);
    1.0 - 0.5 * (2.0 * std::f64::consts::PI * phase).cos()
}

/// Generates requests every 100 ms until `stop` (the incident timed from `started`, the
/// diurnal cycle from `day_origin`), failing the incident region's health endpoint while it
/// lasts; gives the gateways back for flushing.
async fn drive_load(
    gateways: Vec<(String, Gateway)>,
    health: Arc<health::HealthEndpoints>,
    args: DemoArgs,
    (started, day_origin): (Instant, Instant),
    stop: tokio_util::sync::CancellationToken,
) -> Vec<(String, Gateway)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let tick = Duration::from_millis(100);
    let mut interval = tokio::time::interval(tick);
    let mut carry = vec![0.0f64; gateways.len()];
    while !stop.is_cancelled() {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => break,
        }
        let elapsed = started.elapsed();
        let in_incident = !args.no_incident
            && elapsed >= args.incident_after
            && elapsed < args.incident_after + args.incident_for;
        health.set_failing(&args.incident_region, in_incident);
        for (i, (region, gateway)) in gateways.iter().enumerate() {
            let condition = if in_incident && *region == args.incident_region {
                Condition {
                    latency_factor: 6.0,
                    error_rate: 0.25,
                }
            } else {
                Condition {
                    latency_factor: 1.0,
                    error_rate: 0.0,
                }
            };
            let day_phase = day_origin.elapsed().as_secs_f64();
            carry[i] += args.rate * diurnal(day_phase, args.day) * tick.as_secs_f64();
            let n = carry[i].floor();
            carry[i] -= n;
            gateway.serve(n as usize, condition, &mut rng);
        }
    }
    gateways
}
