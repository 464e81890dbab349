//! The closed loop with a real Traefik as the global entry point (tests/common/closed_loop.rs).

mod common;

/// Scenario: three regions, each an upstream behind a real Envoy exporting OTLP to its
/// regional collector, every collector probing every region (1 s × 2); a real Traefik in front,
/// driven by `meridian agent`; steady traffic; eu-west-1's upstream starts answering 503; agent
/// and analyzer killed with SIGKILL while it is drained; the agent restarted first, then the
/// analyzer; eu-west-1 recovers.
/// Guarantees: failover recommended, applied by the agent, and eu-west-1's share of requests
/// (counted at the upstreams) below 1% within the probe time plus 12 s; without agent and
/// analyzer the gateway keeps serving on the last weights; a restarted agent with no analyzer
/// writes nothing and converges once the analyzer is back; failback applied in the analyzer's
/// steps 10 → 50 → 100, shares back to about a third each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_entry_point_follows_failover_and_failback() {
    common::closed_loop::run(common::closed_loop::Entry::Traefik).await;
}
