//! `information_schema` as PostgreSQL presents it: `data_type` in PostgreSQL's names
//! (`timestamp with time zone`, `bigint`, `text`), which is what Grafana's query builder and
//! other clients read to pick time and value columns. DataFusion's own `information_schema`
//! reports Arrow types and is turned off in its favour.

use std::sync::{Arc, Weak};

use arrow::array::{Int32Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProviderList, MemTable, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::TableType;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::Type;

/// The schema's name.
pub const NAME: &str = "information_schema";

/// Schemas whose tables are listed (the store's); `pg_catalog` is left out, as its tables are
/// built on demand and no client lists them through here.
const LISTED_SCHEMAS: &[&str] = &["public"];

const TABLES: &[&str] = &["schemata", "tables", "columns", "views"];

/// `information_schema` over a session's catalogs, built when read.
#[derive(Debug)]
pub struct InformationSchema {
    catalogs: Weak<dyn CatalogProviderList>,
}

impl InformationSchema {
    /// The schema over `catalogs` (held weakly: the catalogs hold this schema).
    pub fn new(catalogs: &Arc<dyn CatalogProviderList>) -> Self {
        Self {
            catalogs: Arc::downgrade(catalogs),
        }
    }

    fn catalogs(&self) -> DfResult<Arc<dyn CatalogProviderList>> {
        self.catalogs
            .upgrade()
            .ok_or_else(|| DataFusionError::Internal("the session is gone".into()))
    }

    fn schemata(&self) -> DfResult<RecordBatch> {
        let mut catalog_col = StringBuilder::new();
        let mut schema_col = StringBuilder::new();
        let mut owner = StringBuilder::new();
        let catalogs = self.catalogs()?;
        for catalog_name in catalogs.catalog_names() {
            let Some(catalog) = catalogs.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                catalog_col.append_value(&catalog_name);
                schema_col.append_value(&schema_name);
                owner.append_value("meridian");
            }
        }
        batch(
            "schemata",
            vec![
                Arc::new(catalog_col.finish()),
                Arc::new(schema_col.finish()),
                Arc::new(owner.finish()),
            ],
        )
    }

    /// Every listed table, with its schema: `(catalog, schema, table, kind, arrow schema)`.
    async fn listed(&self) -> DfResult<Vec<(String, String, String, &'static str, SchemaRef)>> {
        let catalogs = self.catalogs()?;
        let mut out = Vec::new();
        for catalog_name in catalogs.catalog_names() {
            let Some(catalog) = catalogs.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                if schema_name == NAME {
                    for table in TABLES {
                        out.push((
                            catalog_name.clone(),
                            schema_name.clone(),
                            table.to_string(),
                            "VIEW",
                            table_schema(table),
                        ));
                    }
                    continue;
                }
                if !LISTED_SCHEMAS.contains(&schema_name.as_str()) {
                    continue;
                }
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let mut names = schema.table_names();
                names.sort();
                for table_name in names {
                    if let Some(table) = schema.table(&table_name).await? {
                        let kind = match table.table_type() {
                            TableType::View => "VIEW",
                            _ => "BASE TABLE",
                        };
                        out.push((
                            catalog_name.clone(),
                            schema_name.clone(),
                            table_name,
                            kind,
                            table.schema(),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn tables(&self) -> DfResult<RecordBatch> {
        let mut cols: [StringBuilder; 4] = Default::default();
        for (catalog, schema, table, kind, _) in self.listed().await? {
            for (col, value) in cols
                .iter_mut()
                .zip([catalog, schema, table, kind.to_string()])
            {
                col.append_value(value);
            }
        }
        batch(
            "tables",
            cols.iter_mut().map(|c| Arc::new(c.finish()) as _).collect(),
        )
    }

    async fn columns(&self) -> DfResult<RecordBatch> {
        let mut names: [StringBuilder; 4] = Default::default();
        let mut position = Int32Builder::new();
        let mut default = StringBuilder::new();
        let mut nullable = StringBuilder::new();
        let mut data_type = StringBuilder::new();
        let mut udt = StringBuilder::new();
        for (catalog, schema, table, _, fields) in self.listed().await? {
            for (i, field) in fields.fields().iter().enumerate() {
                let values = [&catalog, &schema, &table, field.name()];
                for (col, value) in names.iter_mut().zip(values) {
                    col.append_value(value);
                }
                position.append_value(i as i32 + 1);
                default.append_null();
                nullable.append_value(if field.is_nullable() { "YES" } else { "NO" });
                let (long, short) = pg_type_names(field.data_type());
                data_type.append_value(long);
                udt.append_value(short);
            }
        }
        let [mut a, mut b, mut c, mut d] = names;
        batch(
            "columns",
            vec![
                Arc::new(a.finish()),
                Arc::new(b.finish()),
                Arc::new(c.finish()),
                Arc::new(d.finish()),
                Arc::new(position.finish()),
                Arc::new(default.finish()),
                Arc::new(nullable.finish()),
                Arc::new(data_type.finish()),
                Arc::new(udt.finish()),
            ],
        )
    }

    fn views(&self) -> DfResult<RecordBatch> {
        Ok(RecordBatch::new_empty(table_schema("views")))
    }
}

/// The columns of each `information_schema` table.
fn table_schema(table: &str) -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let fields = match table {
        "schemata" => vec![
            text("catalog_name"),
            text("schema_name"),
            text("schema_owner"),
        ],
        "tables" => vec![
            text("table_catalog"),
            text("table_schema"),
            text("table_name"),
            text("table_type"),
        ],
        "columns" => vec![
            text("table_catalog"),
            text("table_schema"),
            text("table_name"),
            text("column_name"),
            Field::new("ordinal_position", DataType::Int32, true),
            text("column_default"),
            text("is_nullable"),
            text("data_type"),
            text("udt_name"),
        ],
        _ => vec![
            text("table_catalog"),
            text("table_schema"),
            text("table_name"),
            text("view_definition"),
        ],
    };
    Arc::new(Schema::new(fields))
}

/// One `information_schema` table's rows from its columns.
fn batch(table: &str, columns: Vec<arrow::array::ArrayRef>) -> DfResult<RecordBatch> {
    Ok(RecordBatch::try_new(table_schema(table), columns)?)
}

/// PostgreSQL's name for a column type (`data_type`) and its short name (`udt_name`).
pub fn pg_type_names(arrow: &DataType) -> (String, String) {
    let Ok(pg) = into_pg_type(arrow) else {
        return ("USER-DEFINED".into(), "unknown".into());
    };
    let long = match pg {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::NUMERIC => "numeric",
        Type::TEXT => "text",
        Type::VARCHAR => "character varying",
        Type::CHAR | Type::BPCHAR => "character",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::DATE => "date",
        Type::TIME => "time without time zone",
        Type::INTERVAL => "interval",
        Type::BYTEA => "bytea",
        Type::JSON => "json",
        Type::JSONB => "jsonb",
        Type::UUID => "uuid",
        ref t if t.name().starts_with('_') => "ARRAY",
        _ => "USER-DEFINED",
    };
    (long.to_string(), pg.name().to_string())
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let batch = match name.to_ascii_lowercase().as_str() {
            "schemata" => self.schemata()?,
            "tables" => self.tables().await?,
            "columns" => self.columns().await?,
            "views" => self.views()?,
            _ => return Ok(None),
        };
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name.to_ascii_lowercase().as_str())
    }
}
