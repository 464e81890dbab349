//! Joining the tasks a running stage spawned, at shutdown: a task that panicked is logged and
//! reported, never dropped, so the process can exit non-zero instead of claiming a clean stop.

use tokio::task::JoinHandle;

/// A task of a running stage did not finish normally.
#[derive(Debug, thiserror::Error)]
#[error("the {task} task {how}")]
pub struct TaskFailed {
    /// Which task.
    pub task: &'static str,
    /// `panicked` or `was cancelled`.
    pub how: &'static str,
}

/// Waits for `handle`; a panic or cancellation is logged with the task's name and returned.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use meridian_collector::task::join;
/// assert_eq!(join("adder", tokio::spawn(async { 1 + 1 })).await.unwrap(), 2);
/// let failed = join("panicker", tokio::spawn(async { panic!("boom") })).await;
/// assert_eq!(failed.unwrap_err().to_string(), "the panicker task panicked");
/// # }
/// ```
pub async fn join<T>(task: &'static str, handle: JoinHandle<T>) -> Result<T, TaskFailed> {
    handle.await.map_err(|e| {
        let how = if e.is_panic() {
            "panicked"
        } else {
            "was cancelled"
        };
        tracing::error!(task, error = %e, "a task of the running stage {how}");
        TaskFailed { task, how }
    })
}

/// Joins every task in order, even after one failed; the first failure is returned.
pub async fn join_all(
    tasks: impl IntoIterator<Item = (&'static str, JoinHandle<()>)>,
) -> Result<(), TaskFailed> {
    let mut first = None;
    for (name, handle) in tasks {
        if let Err(e) = join(name, handle).await {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
