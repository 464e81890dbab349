//! SQL over the store: the read-only DataFusion engine ([`sql`]) speaking PostgreSQL's dialect
//! ([`dialect`]), and its two faces: HTTP ([`http`]) and the PostgreSQL wire ([`postgres`]).

pub mod date_trunc;
pub mod dialect;
pub mod http;
pub mod information_schema;
pub mod postgres;
pub mod sql;

pub use postgres::PgConfig;
pub use sql::{QueryConfig, QueryEngine, QueryStream};
