//! The Arrow schema of the tables collectors fill — `spans`, `metrics`, `logs` and `probes` — defined once and
//! shared by the collector (which builds batches) and the analyzer (which stores and queries them).
//!
//! Every OTLP field has a home, so OTLP → Arrow → OTLP is lossless (see `convert`). Attribute lists
//! become two maps: `*attributes` (key → value rendered as text, for SQL such as
//! `attributes['http.route']`) and `*attribute_types` (key → OTLP type, only for values that are not
//! strings). `docs/schema.md` documents every column.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Version of this schema, carried with every forwarded batch so readers can refuse what they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// Column holding the region that the collector stamped on every row.
pub const REGION: &str = "region";
/// The time column each table is partitioned and pruned by.
pub const TIME: &str = "time";

/// UTC nanosecond timestamps, the type of every time column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// `Map<Utf8, Utf8>` as produced by arrow's `MapBuilder` with default field names.
pub fn string_map_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// The pair of columns that stores one OTLP attribute list losslessly.
fn attribute_fields(prefix: &str) -> [Field; 2] {
    [
        Field::new(format!("{prefix}attributes"), string_map_type(), false),
        Field::new(format!("{prefix}attribute_types"), string_map_type(), false),
    ]
}

/// `List<item>` as produced by arrow's `ListBuilder` (item field named `item`, nullable).
pub fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// Fields of the resource and instrumentation scope, repeated on every row of every table.
fn resource_and_scope_fields() -> Vec<Field> {
    let mut fields = Vec::new();
    fields.extend(attribute_fields("resource_"));
    fields.push(Field::new(
        "resource_dropped_attributes_count",
        DataType::UInt32,
        false,
    ));
    fields.push(Field::new("resource_schema_url", DataType::Utf8, false));
    fields.push(Field::new("scope_name", DataType::Utf8, false));
    fields.push(Field::new("scope_version", DataType::Utf8, false));
    fields.extend(attribute_fields("scope_"));
    fields.push(Field::new(
        "scope_dropped_attributes_count",
        DataType::UInt32,
        false,
    ));
    fields.push(Field::new("scope_schema_url", DataType::Utf8, false));
    fields
}

/// Struct fields of one span event.
pub fn event_fields() -> Fields {
    let mut f = vec![
        Field::new("time", timestamp_type(), false),
        Field::new("name", DataType::Utf8, false),
    ];
    f.extend(attribute_fields(""));
    f.push(Field::new(
        "dropped_attributes_count",
        DataType::UInt32,
        false,
    ));
    Fields::from(f)
}

/// Struct fields of one span link.
pub fn link_fields() -> Fields {
    let mut f = vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
    ];
    f.extend(attribute_fields(""));
    f.push(Field::new(
        "dropped_attributes_count",
        DataType::UInt32,
        false,
    ));
    Fields::from(f)
}

/// Struct fields of one metric exemplar.
pub fn exemplar_fields() -> Fields {
    let mut f = vec![
        Field::new("time", timestamp_type(), false),
        Field::new("value", DataType::Float64, true),
        Field::new("value_int", DataType::Int64, true),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
    ];
    f.extend(attribute_fields("filtered_"));
    Fields::from(f)
}

/// Struct fields of one summary quantile.
pub fn quantile_fields() -> Fields {
    Fields::from(vec![
        Field::new("quantile", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
    ])
}

/// Schema of the `spans` table: one row per span.
pub fn spans() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let ts = timestamp_type;
        let mut fields = vec![
            Field::new(TIME, ts(), false),
            Field::new("end_time", ts(), false),
            Field::new("duration_ns", DataType::Int64, false),
            Field::new(REGION, DataType::Utf8, false),
            Field::new("service_name", DataType::Utf8, true),
            Field::new("trace_id", DataType::Utf8, false),
            Field::new("span_id", DataType::Utf8, false),
            Field::new("parent_span_id", DataType::Utf8, true),
            Field::new("trace_state", DataType::Utf8, false),
            Field::new("flags", DataType::UInt32, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("status_code", DataType::Utf8, false),
            Field::new("status_message", DataType::Utf8, false),
            Field::new("http_request_method", DataType::Utf8, true),
            Field::new("http_route", DataType::Utf8, true),
            Field::new("url_path", DataType::Utf8, true),
            Field::new("http_response_status_code", DataType::Int32, true),
            Field::new("server_address", DataType::Utf8, true),
            Field::new("peer_service", DataType::Utf8, true),
            Field::new("cloud_region", DataType::Utf8, true),
            Field::new("deployment_environment", DataType::Utf8, true),
        ];
        fields.extend(attribute_fields(""));
        fields.push(Field::new(
            "dropped_attributes_count",
            DataType::UInt32,
            false,
        ));
        fields.push(Field::new(
            "events",
            list_of(DataType::Struct(event_fields())),
            false,
        ));
        fields.push(Field::new("dropped_events_count", DataType::UInt32, false));
        fields.push(Field::new(
            "links",
            list_of(DataType::Struct(link_fields())),
            false,
        ));
        fields.push(Field::new("dropped_links_count", DataType::UInt32, false));
        fields.extend(resource_and_scope_fields());
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Schema of the `metrics` table: one row per data point.
pub fn metrics() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let ts = timestamp_type;
        let u64_list = || list_of(DataType::UInt64);
        let mut fields = vec![
            Field::new(TIME, ts(), false),
            Field::new("start_time", ts(), false),
            Field::new(REGION, DataType::Utf8, false),
            Field::new("service_name", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
            Field::new("unit", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("temporality", DataType::Utf8, true),
            Field::new("is_monotonic", DataType::Boolean, true),
            Field::new("flags", DataType::UInt32, false),
            Field::new("value", DataType::Float64, true),
            Field::new("value_int", DataType::Int64, true),
            Field::new("count", DataType::UInt64, true),
            Field::new("sum", DataType::Float64, true),
            Field::new("min", DataType::Float64, true),
            Field::new("max", DataType::Float64, true),
            Field::new("bucket_counts", u64_list(), true),
            Field::new("explicit_bounds", list_of(DataType::Float64), true),
            Field::new("exp_scale", DataType::Int32, true),
            Field::new("exp_zero_count", DataType::UInt64, true),
            Field::new("exp_zero_threshold", DataType::Float64, true),
            Field::new("exp_positive_offset", DataType::Int32, true),
            Field::new("exp_positive_bucket_counts", u64_list(), true),
            Field::new("exp_negative_offset", DataType::Int32, true),
            Field::new("exp_negative_bucket_counts", u64_list(), true),
            Field::new(
                "quantiles",
                list_of(DataType::Struct(quantile_fields())),
                true,
            ),
            Field::new(
                "exemplars",
                list_of(DataType::Struct(exemplar_fields())),
                false,
            ),
        ];
        fields.extend(attribute_fields(""));
        fields.extend(attribute_fields("metadata_"));
        fields.extend(resource_and_scope_fields());
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Schema of the `logs` table: one row per log record.
pub fn logs() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let ts = timestamp_type;
        let mut fields = vec![
            Field::new(TIME, ts(), false),
            Field::new("observed_time", ts(), false),
            Field::new(REGION, DataType::Utf8, false),
            Field::new("service_name", DataType::Utf8, true),
            Field::new("severity_number", DataType::Int32, false),
            Field::new("severity_text", DataType::Utf8, false),
            Field::new("body", DataType::Utf8, true),
            Field::new("body_type", DataType::Utf8, true),
            Field::new("trace_id", DataType::Utf8, true),
            Field::new("span_id", DataType::Utf8, true),
            Field::new("flags", DataType::UInt32, false),
            Field::new("event_name", DataType::Utf8, false),
        ];
        fields.extend(attribute_fields(""));
        fields.push(Field::new(
            "dropped_attributes_count",
            DataType::UInt32,
            false,
        ));
        fields.extend(resource_and_scope_fields());
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Schema of the `probes` table: one row per health check, from the collector that ran it (the
/// vantage point).
pub fn probes() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let fields = vec![
            Field::new(TIME, timestamp_type(), false),
            Field::new("vantage_region", DataType::Utf8, false),
            Field::new("endpoint", DataType::Utf8, false),
            Field::new(REGION, DataType::Utf8, false),
            Field::new("service_name", DataType::Utf8, true),
            Field::new("url", DataType::Utf8, false),
            Field::new("ok", DataType::Boolean, false),
            Field::new("healthy", DataType::Boolean, false),
            Field::new("status_code", DataType::Int32, true),
            Field::new("connect_ms", DataType::Float64, true),
            Field::new("first_byte_ms", DataType::Float64, true),
            Field::new("error", DataType::Utf8, true),
            Field::new("interval_s", DataType::Float64, false),
            Field::new("failure_threshold", DataType::Int32, false),
        ];
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}
