//! The bounded queue between the receivers and the forwarder, bounded in rows.
//!
//! A receiver either gets its whole batch in (the rows now count as accepted and will reach the
//! sink or be reported lost) or gets [`QueueFull`] and answers the client with retryable
//! backpressure. Room is given back only when the forwarder has delivered the rows.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::signal::SignalBatch;
use crate::telemetry::CollectorMetrics;

/// The queue has no room for the batch; the client should retry later.
#[derive(Debug, thiserror::Error)]
#[error("the collector's queue is full ({capacity} rows); retry later")]
pub struct QueueFull {
    /// Capacity of the queue in rows.
    pub capacity: usize,
}

/// Why a batch sent with [`QueueSender::try_send_durable`] was not made durable; the receiver
/// tells its client to retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AckError {
    /// The buffer holds `max_bytes` already.
    #[error("the collector's disk buffer is full ({0} bytes); retry later")]
    Full(u64),
    /// Writing failed (disk full, I/O error).
    #[error("writing the collector's disk buffer failed: {0}")]
    Write(String),
}

/// A batch in the queue, holding its share of the queue's room until delivered.
pub struct Queued {
    /// The batch.
    pub batch: SignalBatch,
    /// Room taken in the queue; dropping it frees the room.
    pub permit: OwnedSemaphorePermit,
    /// Told when the batch is safely buffered (disk buffer only); the receiver waits for it.
    pub done: Option<oneshot::Sender<Result<(), AckError>>>,
}

/// The sending side of the queue, shared by all receivers.
#[derive(Clone)]
pub struct QueueSender {
    room: Arc<Semaphore>,
    capacity: usize,
    tx: mpsc::UnboundedSender<Queued>,
    metrics: CollectorMetrics,
}

/// Creates a queue of `capacity` rows.
pub fn bounded(
    capacity: usize,
    metrics: CollectorMetrics,
) -> (QueueSender, mpsc::UnboundedReceiver<Queued>) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = QueueSender {
        room: Arc::new(Semaphore::new(capacity)),
        capacity,
        tx,
        metrics,
    };
    (sender, rx)
}

impl QueueSender {
    /// Enqueues a batch if there is room for its rows, without waiting.
    ///
    /// A batch larger than the whole queue is let in when the queue is empty, so that one big
    /// request can never be refused forever.
    pub fn try_send(&self, batch: SignalBatch) -> Result<(), QueueFull> {
        self.send(batch, None)
    }

    /// Enqueues a batch like [`try_send`](Self::try_send); the returned receiver says when the
    /// disk buffer holds it.
    pub fn try_send_durable(
        &self,
        batch: SignalBatch,
    ) -> Result<oneshot::Receiver<Result<(), AckError>>, QueueFull> {
        let (tx, rx) = oneshot::channel();
        self.send(batch, Some(tx))?;
        Ok(rx)
    }

    fn send(
        &self,
        batch: SignalBatch,
        done: Option<oneshot::Sender<Result<(), AckError>>>,
    ) -> Result<(), QueueFull> {
        let permits = self.permits(batch.rows());
        let permit = Arc::clone(&self.room)
            .try_acquire_many_owned(permits)
            .map_err(|_| QueueFull {
                capacity: self.capacity,
            })?;
        self.metrics.queue_rows.add(i64::from(permits));
        self.tx
            .send(Queued {
                batch,
                permit,
                done,
            })
            .map_err(|_| QueueFull {
                capacity: self.capacity,
            })
    }

    /// Whether `rows` rows would fit now: a cheap check before the work of building them
    /// (`try_send` still decides).
    pub fn check_room(&self, rows: usize) -> Result<(), QueueFull> {
        if self.room.available_permits() >= self.permits(rows) as usize {
            Ok(())
        } else {
            Err(QueueFull {
                capacity: self.capacity,
            })
        }
    }

    /// Room a batch of `rows` rows takes (see `try_send` for why it is capped at the capacity).
    fn permits(&self, rows: usize) -> u32 {
        u32::try_from(rows.clamp(1, self.capacity)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{metrics, span_batch};

    /// Scenario: a queue of 100 rows takes 60, is offered 50, then the first batch is delivered.
    /// Guarantees: a batch that does not fit is refused whole (nothing queued), and room comes
    /// back only when the delivered batch's permit is dropped.
    #[test]
    fn a_batch_that_does_not_fit_is_refused_until_room_is_given_back() {
        let (queue, mut rx) = bounded(100, metrics());
        queue.try_send(span_batch(60, 0)).unwrap();
        assert!(queue.check_room(50).is_err());
        let refused = queue.try_send(span_batch(50, 100)).unwrap_err();
        assert_eq!(refused.capacity, 100);
        let first = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err(), "the refused batch was not queued");
        assert!(
            queue.try_send(span_batch(50, 100)).is_err(),
            "room held until delivered"
        );
        drop(first);
        queue.try_send(span_batch(50, 100)).unwrap();
        assert_eq!(rx.try_recv().unwrap().batch.rows(), 50);
    }

    /// Scenario: one request larger than the whole queue, offered to an empty and to a busy queue.
    /// Guarantees: it is let in when the queue is empty (so it is never refused forever), and
    /// refused while anything else holds room.
    #[test]
    fn an_oversized_batch_enters_an_empty_queue_only() {
        let (queue, mut rx) = bounded(10, metrics());
        queue.try_send(span_batch(1, 0)).unwrap();
        assert!(queue.try_send(span_batch(25, 10)).is_err());
        drop(rx.try_recv().unwrap());
        queue.try_send(span_batch(25, 10)).unwrap();
        assert_eq!(rx.try_recv().unwrap().batch.rows(), 25);
    }
}
