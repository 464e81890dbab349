//! A [`Sink`] for tests: answers each delivery from a script, then with `Ok`, and records every
//! attempt (with the tokio time it came at, so paused-time tests can read the backoff) and every
//! batch it accepted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::time::Instant;

use crate::signal::SignalBatch;
use crate::sink::{Sink, SinkError};

/// How the sink answers one delivery.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Accept the batch.
    Ok,
    /// `SinkError::Unavailable`: the forwarder retries.
    Unavailable,
    /// `SinkError::Refused`: the batch is lost.
    Refused,
    /// Panic inside `deliver`, as a buggy sink would.
    Panic,
}

#[derive(Default)]
struct Log {
    script: VecDeque<Reply>,
    attempts: Vec<(Instant, usize)>,
    delivered: Vec<SignalBatch>,
}

/// The capture sink; clones share one log.
#[derive(Clone, Default)]
pub struct CaptureSink {
    log: Arc<Mutex<Log>>,
}

impl CaptureSink {
    /// A sink that answers `script` in order, then `Ok` forever.
    pub fn scripted(script: impl IntoIterator<Item = Reply>) -> Self {
        let sink = Self::default();
        sink.lock().script = script.into_iter().collect();
        sink
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When each delivery was attempted, with its rows.
    pub fn attempts(&self) -> Vec<(Instant, usize)> {
        self.lock().attempts.clone()
    }

    /// The batches accepted, in order.
    pub fn delivered(&self) -> Vec<SignalBatch> {
        self.lock().delivered.clone()
    }

    /// Rows accepted in all.
    pub fn delivered_rows(&self) -> usize {
        self.lock().delivered.iter().map(SignalBatch::rows).sum()
    }
}

impl Sink for CaptureSink {
    fn name(&self) -> &'static str {
        "capture"
    }

    fn deliver(&self, batch: SignalBatch) -> BoxFuture<'_, Result<(), SinkError>> {
        let reply = {
            let mut log = self.lock();
            log.attempts.push((Instant::now(), batch.rows()));
            let reply = log.script.pop_front().unwrap_or(Reply::Ok);
            if let Reply::Ok = reply {
                log.delivered.push(batch);
            }
            reply
        };
        let result = match reply {
            Reply::Ok => Ok(()),
            Reply::Unavailable => Err(SinkError::Unavailable("scripted".into())),
            Reply::Refused => Err(SinkError::Refused("scripted".into())),
            Reply::Panic => panic!("the capture sink was scripted to panic"),
        };
        futures::future::ready(result).boxed()
    }
}
