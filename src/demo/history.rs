//! The demo's history: the hour before the live traffic, healthy, with the same traffic model
//! and diurnal shape, generated directly as OTLP requests (no SDK clock) and stored through the
//! analyzer's in-process sink in time order, as a collector would have delivered it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meridian_collector::convert::traces_to_arrow;
use meridian_collector::sink::Sink;
use meridian_collector::{Signal, SignalBatch};
use rand::SeedableRng;

use super::dataset::trace_request;
use super::traffic::Condition;
use super::{diurnal, DemoArgs, FLEET};

/// Generates `args.history` of traffic before `now` into `sink`, and on until the moment it
/// finishes (so the live traffic follows without a gap); returns the spans stored.
pub async fn backfill(
    sink: &Arc<dyn Sink>,
    args: &DemoArgs,
    now: SystemTime,
) -> anyhow::Result<usize> {
    let unix_ns = |t: SystemTime| -> anyhow::Result<u64> {
        Ok(t.duration_since(UNIX_EPOCH)?.as_nanos() as u64)
    };
    let end_ns = unix_ns(now)?;
    let span_ns = args.history.as_nanos() as u64;
    let slot = Duration::from_secs(1);
    let slot_ns = slot.as_nanos() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut carry = [0.0f64; FLEET.len()];
    let mut made = 0;
    let mut start = end_ns.saturating_sub(span_ns);
    while start < unix_ns(SystemTime::now())? {
        // The live traffic's clock starts when the history ends.
        let elapsed_s = (start as f64 - end_ns as f64) / 1e9;
        for (i, (region, _)) in FLEET.iter().enumerate() {
            carry[i] += args.rate * diurnal(elapsed_s, args.day) * slot.as_secs_f64();
            let n = carry[i].floor() as usize;
            carry[i] -= n as f64;
            if n == 0 {
                continue;
            }
            let request = trace_request(
                region,
                n,
                start,
                slot_ns / n as u64,
                Condition {
                    latency_factor: 1.0,
                    error_rate: 0.0,
                },
                &mut rng,
            );
            let converted = traces_to_arrow(&request, region)?;
            made += converted.batch.num_rows();
            let batch = SignalBatch::new(Signal::Traces, converted.batch);
            loop {
                match sink.deliver(batch.clone()).await {
                    Ok(()) => break,
                    // The store is flushing: wait for it, as a collector would.
                    Err(e) if e.is_retryable() => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        start += slot_ns;
    }
    Ok(made)
}
