//! The simple and extended query protocols, translated to the [`QueryEngine`].

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, DataType as ArrowType, Field, Int64Type, Schema, TimeUnit,
};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse, Response};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers, Type,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::{DfSessionService, Parser};
use futures::{stream, Sink, StreamExt};

use super::login::{Login, Users};
use super::read_only::ReadOnly;
use crate::error::QueryError;
use crate::query::{dialect, QueryEngine, QueryStream};

/// A prepared statement: its SQL and, unless empty, its parsed form and plan.
type Prepared = (String, Option<(Statement, LogicalPlan)>);

/// Everything a connection needs; shared by all connections.
pub(super) struct Handlers {
    session: Arc<Session>,
    users: Arc<Users>,
    connections: Arc<ConnectionManager>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Handlers {
    /// Handlers over `engine`, admitting `users`.
    pub(super) fn new(engine: Arc<QueryEngine>, users: Users) -> Self {
        let connections = Arc::new(ConnectionManager::new());
        Self {
            session: Arc::new(Session::new(engine)),
            users: Arc::new(users),
            cancel: Arc::new(DefaultCancelHandler::new(Arc::clone(&connections))),
            connections,
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.session)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.session)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Login::new(&self.users, &self.connections))
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// Logs what a client is told went wrong, at debug: a bad query is the client's business.
struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(%error, "PostgreSQL endpoint: error sent to client");
    }
}

/// Runs statements from either protocol through the engine.
pub(super) struct Session {
    engine: Arc<QueryEngine>,
    statements: PostgresCompatibilityParser,
    parser: Arc<StatementParser>,
    hooks: Vec<Arc<dyn QueryHook>>,
}

impl Session {
    fn new(engine: Arc<QueryEngine>) -> Self {
        // Read-only first: nothing else sees a refused statement.
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnly),
            Arc::new(TransactionStatementHook),
            Arc::new(SetShowHook),
            Arc::new(CursorStatementHook),
        ];
        let ctx = Arc::new(engine.session().clone());
        let library = DfSessionService::new_with_hooks(ctx, hooks.clone());
        let parser = Arc::new(StatementParser {
            engine: Arc::clone(&engine),
            inner: library.query_parser(),
        });
        Self {
            engine,
            statements: PostgresCompatibilityParser::new(),
            parser,
            hooks,
        }
    }

    /// Runs one planned query; `format` is per column (extended) or all text (simple).
    async fn run(
        &self,
        plan: LogicalPlan,
        format: &Format,
        client: &(impl ClientInfo + ?Sized),
    ) -> PgWireResult<Response> {
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let max = self.engine.config().max_result_rows;
        let stream = self
            .engine
            .stream_within(plan, Some(max.saturating_add(1)), statement_timeout(client))
            .await
            .map_err(pg_error)?;
        Ok(Response::Query(encode(stream, format, options, max)?))
    }
}

#[async_trait]
impl SimpleQueryHandler for Session {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = dialect::rewrite(self.engine.session(), query);
        let statements = self
            .statements
            .parse(&sql)
            .map_err(|e| user_error("42601", format!("syntax error: {e}")))?;
        // A comment-only string (Grafana's `-- ping`) has no statements: PostgreSQL answers
        // EmptyQueryResponse.
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        'statements: for statement in statements {
            for hook in &self.hooks {
                if let Some(response) = hook
                    .handle_simple_query(&statement, self.engine.session(), client)
                    .await
                {
                    responses.push(response?);
                    continue 'statements;
                }
            }
            let plan = plan_statement(&self.engine, statement).await?;
            responses.push(self.run(plan, &Format::UnifiedText, client).await?);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Session {
    type Statement = Prepared;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (_, Some((statement, plan))) = &portal.statement.statement else {
            return Ok(Response::EmptyQuery);
        };
        let no_params = ParamValues::List(vec![]);
        for hook in &self.hooks {
            if let Some(response) = hook
                .handle_extended_query(statement, plan, &no_params, self.engine.session(), client)
                .await
            {
                return response;
            }
        }
        let types = parameter_types(plan)?;
        let refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
        let params = deserialize_parameters(portal, &refs)?;
        let plan = plan
            .clone()
            .replace_params_with_values(&params)
            .map_err(|e| user_error("22023", e.to_string()))?;
        self.run(plan, &portal.result_column_format, client).await
    }
}

/// The library's statement parser, behind Meridian's `FROM` rewrite.
pub(super) struct StatementParser {
    engine: Arc<QueryEngine>,
    inner: Arc<Parser>,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // The library's parser runs the hooks, so a write is refused here by `ReadOnly`.
        let sql = dialect::rewrite(self.engine.session(), sql);
        self.inner.parse_sql(client, &sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

/// The session's `SET statement_timeout`, as the SET hook records it (0 or unset: none).
fn statement_timeout(client: &(impl ClientInfo + ?Sized)) -> Option<std::time::Duration> {
    client
        .metadata()
        .get("statement_timeout_ms")
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(std::time::Duration::from_millis)
}

/// Plans a statement the hooks left (`ReadOnly` refused writes; the engine checks the plan).
async fn plan_statement(engine: &QueryEngine, statement: Statement) -> PgWireResult<LogicalPlan> {
    let state = engine.session().state();
    let plan = state
        .statement_to_plan(DfStatement::Statement(Box::new(statement)))
        .await
        .map_err(|e| pg_error(crate::query::sql::classify(e)))?;
    Ok(plan)
}

/// The plan's `$n` parameter types in order.
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types = plan
        .get_parameter_types()
        .map_err(|e| user_error("42P18", e.to_string()))?;
    let mut numbered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(name, ty)| {
            name.trim_start_matches('$')
                .parse::<usize>()
                .ok()
                .map(|n| (n, ty))
        })
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    Ok(numbered.into_iter().map(|(_, ty)| ty).collect())
}

/// Encodes the engine's batches as PostgreSQL rows; more than `max` rows is an error, since
/// PostgreSQL cannot mark a result as cut.
fn encode(
    stream: QueryStream,
    format: &Format,
    options: Arc<FormatOptions>,
    max: usize,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(arrow_schema_to_pg_fields(
        &stream.schema,
        format,
        Some(options),
    )?);
    let row_fields = Arc::clone(&fields);
    let mut rows_sent = 0usize;
    let rows = stream
        .batches
        .map(move |batch| -> Box<dyn Iterator<Item = _> + Send> {
            match batch {
                Ok(batch) => {
                    rows_sent += batch.num_rows();
                    if rows_sent > max {
                        Box::new(std::iter::once(Err(user_error(
                            "54000",
                            format!(
                                "the result has more than {max} rows (analyzer.query.max_result_rows); \
                                 add LIMIT, narrow the time range or aggregate"
                            ),
                        ))))
                    } else {
                        match postgres_text_timestamps(batch, &row_fields) {
                            Ok(batch) => encode_recordbatch(Arc::clone(&row_fields), batch),
                            Err(e) => Box::new(std::iter::once(Err(e))),
                        }
                    }
                }
                Err(e) => Box::new(std::iter::once(Err(pg_error(e)))),
            }
        })
        .flat_map(stream::iter);
    Ok(QueryResponse::new(fields, rows))
}

/// Timestamps sent as text the way PostgreSQL prints them in UTC: `2024-01-01 00:00:00+00`,
/// fractional seconds only when non-zero and without trailing zeros (clients such as Grafana
/// parse this form).
fn postgres_text_timestamps(batch: RecordBatch, fields: &[FieldInfo]) -> PgWireResult<RecordBatch> {
    let needs = batch.schema().fields().iter().enumerate().any(|(i, f)| {
        matches!(f.data_type(), ArrowType::Timestamp(..))
            && fields.get(i).map(FieldInfo::format) == Some(FieldFormat::Text)
    });
    if !needs {
        return Ok(batch);
    }
    let mut columns = batch.columns().to_vec();
    let mut schema_fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    for (i, column) in columns.iter_mut().enumerate() {
        let ArrowType::Timestamp(_, zone) = column.data_type().clone() else {
            continue;
        };
        if fields.get(i).map(FieldInfo::format) != Some(FieldFormat::Text) {
            continue;
        }
        let nanos = cast(column, &ArrowType::Timestamp(TimeUnit::Nanosecond, None))
            .and_then(|a| cast(&a, &ArrowType::Int64))
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let nanos = nanos.as_primitive::<Int64Type>();
        let suffix = if zone.is_some() { "+00" } else { "" };
        let text: StringArray = nanos
            .iter()
            .map(|n| n.map(|n| postgres_timestamp(n, suffix)))
            .collect();
        *column = Arc::new(text);
        schema_fields[i] = Arc::new(Field::new(
            schema_fields[i].name(),
            ArrowType::Utf8,
            schema_fields[i].is_nullable(),
        ));
    }
    RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), columns)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// `nanos` since the epoch as PostgreSQL's ISO text.
fn postgres_timestamp(nanos: i64, suffix: &str) -> String {
    let time = chrono::DateTime::from_timestamp_nanos(nanos);
    let mut text = time.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = time.timestamp_subsec_micros();
    if micros != 0 {
        let fraction = format!(".{micros:06}");
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push_str(suffix);
    text
}

/// An `ERROR` with SQLSTATE `code`.
fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// The engine's error with PostgreSQL's SQLSTATE for it.
fn pg_error(e: QueryError) -> PgWireError {
    let code = match &e {
        // syntax_error_or_access_rule_violation: bad SQL, unknown names, refused statements.
        QueryError::Invalid(_) => "42000",
        QueryError::Execution(_) => "XX000",
        QueryError::Timeout(_) => "57014",
        QueryError::TooLarge(_) => "53200",
    };
    user_error(code, e.to_string())
}
