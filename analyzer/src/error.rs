//! Errors of the analyzer: storing, querying, serving.

use std::path::Path;

/// Why storing or loading data failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File-system I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The object store (local directory or S3-compatible bucket) failed.
    #[error("object store: {0}")]
    Object(#[from] object_store::Error),
    /// The store's location is not a usable URL.
    #[error("store url `{url}`: {reason}")]
    Location {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing or reading Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A batch does not have its table's schema.
    #[error("schema mismatch: {0}")]
    Schema(String),
    /// Too many rows are waiting to be flushed; the writer should retry later.
    #[error("the store is behind: {0} rows waiting to be flushed")]
    Behind(usize),
    /// A background task (flush, compaction, object sync, forecast fit) panicked or was
    /// cancelled before it finished.
    #[error("the {task} task did not finish: {source}")]
    Task {
        /// Which task.
        task: &'static str,
        /// Why it did not finish.
        source: tokio::task::JoinError,
    },
    /// The ledger checkpoint could not be encoded or decoded.
    #[error("ledger checkpoint: {0}")]
    Checkpoint(#[source] serde_json::Error),
    /// The analysis state (RED intervals, detectors, forecasters) could not be encoded.
    #[error("encoding the analysis state: {0}")]
    AnalysisState(#[source] bincode::Error),
    /// A file listed for compaction was gone when it was read.
    #[error("{0} disappeared during compaction")]
    Vanished(String),
}

impl StoreError {
    /// Whether the same insert may succeed later: the store is only behind. The one decision
    /// behind the in-process sink, the HTTP ingest endpoint (503 and `Retry-After`) and the
    /// Kafka consumer (pause, then retry); every other error is permanent for that batch.
    ///
    /// ```
    /// use meridian_analyzer::StoreError;
    /// assert!(StoreError::Behind(10).is_retryable());
    /// assert!(!StoreError::Schema("no time column".into()).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Behind(_))
    }

    /// A task's `JoinError` as a store error.
    pub fn task(task: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |source| StoreError::Task { task, source }
    }

    /// Wraps an I/O error with its path.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Why a SQL query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query is not valid SQL, names unknown tables or columns, or is not allowed (read-only).
    #[error("{0}")]
    Invalid(String),
    /// The query was valid but failed while running.
    #[error("{0}")]
    Execution(String),
    /// The query ran longer than the configured timeout and was cancelled.
    #[error("the query was cancelled after the {0:?} timeout (analyzer.query.timeout); narrow its time range or aggregate more")]
    Timeout(std::time::Duration),
    /// The query needed more memory than the configured limit.
    #[error("the query needs more memory than analyzer.query.memory_limit_bytes allows: {0}")]
    TooLarge(String),
}

impl QueryError {
    /// The outcome label this error is counted under in the query metrics.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            QueryError::Invalid(_) => "invalid",
            QueryError::Execution(_) => "failed",
            QueryError::Timeout(_) => "timeout",
            QueryError::TooLarge(_) => "too_large",
        }
    }
}

/// Why the Kafka consumer could not start.
#[derive(Debug, thiserror::Error)]
#[error("Kafka consumer: {0}")]
pub struct ConsumeError(pub String);

/// Why the analyzer could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzerError {
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// A listener could not bind.
    #[error(transparent)]
    Bind(#[from] meridian_collector::listen::BindError),
    /// The HTTP API's TLS certificate or settings are not usable.
    #[error("[analyzer.tls]: {0}")]
    Tls(#[from] meridian_collector::tls::TlsError),
    /// The Kafka consumer could not start.
    #[error("{0}")]
    Kafka(#[from] ConsumeError),
    /// The SQL engine could not be built over the store.
    #[error("building the SQL engine: {0}")]
    QueryEngine(#[source] QueryError),
    /// The PostgreSQL endpoint is misconfigured.
    #[error("{0}")]
    Postgres(String),
    /// Metrics could not be registered.
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
