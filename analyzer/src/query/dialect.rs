//! The PostgreSQL dialect both SQL endpoints speak: the `pg_catalog` schema and functions
//! clients probe (`quote_ident`, `array_upper`, `current_setting`, ...), and one rewrite
//! DataFusion needs for what PostgreSQL allows in `FROM`.
//!
//! HTTP and the PostgreSQL wire share this, so a query copied from a Grafana panel answers the
//! same through `curl` as through the datasource.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result as DfResult, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, Statement, TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;

/// The PostgreSQL version Meridian reports (`server_version`); clients pick features by it.
pub const SERVER_VERSION: &str = "16.6";
/// [`SERVER_VERSION`] as `server_version_num`.
pub const SERVER_VERSION_NUM: &str = "160006";

/// Settings `current_setting()` and `SHOW` answer, as a PostgreSQL 16 server with Meridian's
/// fixed session (UTC, ISO dates, UTF-8) would.
const SETTINGS: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", SERVER_VERSION_NUM),
    ("search_path", "\"$user\", public"),
    ("timezone", "UTC"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("default_transaction_read_only", "on"),
    ("transaction_read_only", "on"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
];

/// Installs `pg_catalog` and the PostgreSQL functions into `ctx`.
pub fn install(ctx: &SessionContext, catalog: &str) -> DfResult<()> {
    setup_pg_catalog(ctx, catalog, EmptyContextProvider).map_err(|e| *e)?;
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(
        super::date_trunc::UtcDateTrunc::default(),
    ));
    Ok(())
}

/// Rewrites what PostgreSQL accepts in `FROM` and DataFusion does not; other SQL is returned
/// unchanged (also SQL this parser cannot read: the planner reports that error).
///
/// - A scalar function in `FROM` is a one-row table whose column is named by the alias:
///   `FROM string_to_array(x, ',') s` becomes `FROM (SELECT string_to_array(x, ',') AS s) s`.
/// - Bare `user` is `session_user()`.
/// - `x IN (subquery)` as a `CASE` condition is `array_has((SELECT array_agg(..)), x)`.
/// - A one-column table function's column is named by its alias: `FROM generate_series(1, 3)
///   AS i` becomes `FROM generate_series(1, 3) AS i(i)`.
///
/// ```
/// # use datafusion::execution::context::SessionContext;
/// # use meridian_analyzer::query::dialect::rewrite;
/// let ctx = SessionContext::new();
/// let sql = "SELECT s[i] FROM generate_series(1, 2) AS i, string_to_array('a,b', ',') s";
/// let rewritten = rewrite(&ctx, sql);
/// assert!(rewritten.contains("generate_series(1, 2) AS i (i)"), "{rewritten}");
/// assert!(rewritten.contains("(SELECT string_to_array('a,b', ',') AS s) s"), "{rewritten}");
/// ```
pub fn rewrite<'a>(ctx: &SessionContext, sql: &'a str) -> Cow<'a, str> {
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Cow::Borrowed(sql);
    };
    let mut visitor = FromFunctions {
        ctx,
        changed: false,
    };
    for statement in &mut statements {
        let _ = statement.visit(&mut visitor);
    }
    if !visitor.changed {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(
        statements
            .iter()
            .map(Statement::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// `x IN (SELECT c ...)` as `array_has((SELECT array_agg(c) ...), x)`: DataFusion plans `IN`
/// subqueries only as filters, not inside `CASE`, where Grafana's table list puts one.
fn in_subquery_as_array(condition: &Expr) -> Option<Expr> {
    let Expr::InSubquery {
        expr,
        subquery,
        negated,
    } = condition
    else {
        return None;
    };
    let not = if *negated { "NOT " } else { "" };
    let sql =
        format!("{not}array_has((SELECT array_agg(__in.v) FROM ({subquery}) AS __in(v)), {expr})");
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// Finds functions in `FROM` with an alias and no column list.
struct FromFunctions<'a> {
    ctx: &'a SessionContext,
    changed: bool,
}

impl VisitorMut for FromFunctions<'_> {
    type Break = ();

    /// Bare `user` is PostgreSQL's `current_user` (a column named so must be quoted there).
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let bare_user = match expr {
            Expr::Identifier(ident) => {
                ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("user")
            }
            // sqlparser reads the keyword as a call without parentheses.
            Expr::Function(f) => {
                matches!(f.args, FunctionArguments::None)
                    && f.name.to_string().eq_ignore_ascii_case("user")
            }
            _ => false,
        };
        if let Expr::Case { conditions, .. } = expr {
            for when in conditions.iter_mut() {
                if let Some(rewritten) = in_subquery_as_array(&when.condition) {
                    when.condition = rewritten;
                    self.changed = true;
                }
            }
        }
        if bare_user {
            if let Ok(call) = Parser::new(&PostgreSqlDialect {})
                .try_with_sql("session_user()")
                .and_then(|mut p| p.parse_expr())
            {
                *expr = call;
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            args: Some(args),
            alias: Some(alias),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        if !alias.columns.is_empty() {
            return ControlFlow::Continue(());
        }
        let function = name.to_string().to_lowercase();
        let function = function.rsplit('.').next().unwrap_or(&function).to_string();
        let is_table_function = self
            .ctx
            .state()
            .table_functions()
            .contains_key(function.as_str());
        if is_table_function {
            // Only the single-column series functions name their column after the alias.
            if matches!(function.as_str(), "generate_series" | "range") {
                alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
                self.changed = true;
            }
            return ControlFlow::Continue(());
        }
        let args = args
            .args
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let select = format!("SELECT {name}({args}) AS {}", alias.name);
        // The pieces came from a parsed statement, so this parses; if not, leave it to the planner.
        let Ok(Some(Statement::Query(subquery))) =
            Parser::parse_sql(&PostgreSqlDialect {}, &select).map(|mut s| s.pop())
        else {
            return ControlFlow::Continue(());
        };
        *factor = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(alias.clone()),
            sample: None,
        };
        self.changed = true;
        ControlFlow::Continue(())
    }
}

/// `current_setting(name)`: the server setting `name`, as PostgreSQL names them.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl CurrentSetting {
    fn new() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        }
    }
}

/// The value of setting `name` (case-insensitive), if Meridian has it.
pub fn setting(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    SETTINGS
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| *value)
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let lookup = |name: &str| match setting(name) {
            Some(value) => Ok(value.to_string()),
            None => exec_err!("unrecognized configuration parameter \"{name}\""),
        };
        match args.args.first() {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name)))) => Ok(
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(lookup(name)?))),
            ),
            Some(ColumnarValue::Array(names)) => {
                let Some(names) = names.as_any().downcast_ref::<StringArray>() else {
                    return exec_err!("current_setting takes a text argument");
                };
                let values = names
                    .iter()
                    .map(|name| name.map(lookup).transpose())
                    .collect::<DfResult<StringArray>>()?;
                Ok(ColumnarValue::Array(Arc::new(values)))
            }
            _ => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
        }
    }
}
