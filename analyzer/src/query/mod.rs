//! SQL over the store: the read-only DataFusion engine ([`sql`]) and its HTTP face ([`http`]).

pub mod http;
pub mod sql;

pub use sql::{QueryConfig, QueryEngine};
