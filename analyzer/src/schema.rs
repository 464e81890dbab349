//! The Arrow schema of the tables the analyzer derives — `red`, `anomalies`, `forecasts`,
//! `health`, `recommendations` — beside
//! the collector's raw tables (`meridian_collector::schema`), whose time and region columns they
//! share. `docs/schema.md` documents every column.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use meridian_collector::schema::{timestamp_type, REGION, TIME};

/// The dimensions of a RED series, shared by `red`, `anomalies` and `forecasts`. Names follow
/// the OpenTelemetry spanmetrics connector's dimensions (`service.name`, `http.route`) in this
/// schema's snake_case.
fn series_fields() -> [Field; 3] {
    [
        Field::new(REGION, DataType::Utf8, false),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("http_route", DataType::Utf8, false),
    ]
}

/// Schema of the `red` table: one row per series and interval (rate, errors, duration).
pub fn red() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![Field::new(TIME, timestamp_type(), false)];
        fields.extend(series_fields());
        fields.extend([
            Field::new("interval_s", DataType::Float64, false),
            Field::new("request_count", DataType::Int64, false),
            Field::new("request_rate", DataType::Float64, false),
            Field::new("error_count", DataType::Int64, false),
            Field::new("error_ratio", DataType::Float64, true),
            Field::new("latency_p50_ms", DataType::Float64, true),
            Field::new("latency_p90_ms", DataType::Float64, true),
            Field::new("latency_p99_ms", DataType::Float64, true),
            Field::new("count_source", DataType::Utf8, false),
            Field::new("latency_source", DataType::Utf8, true),
        ]);
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Schema of the `anomalies` table: one row per anomalous point of a RED series.
pub fn anomalies() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![
            Field::new(TIME, timestamp_type(), false),
            Field::new("detected_at", timestamp_type(), false),
        ];
        fields.extend(series_fields());
        fields.extend([
            Field::new("metric", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
            Field::new("score", DataType::Float64, false),
            Field::new("expected", DataType::Float64, true),
            Field::new("lower", DataType::Float64, true),
            Field::new("upper", DataType::Float64, true),
            Field::new("severity", DataType::Utf8, false),
            Field::new("detector", DataType::Utf8, false),
        ]);
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Schema of the `forecasts` table: one row per series, metric, origin and horizon.
pub fn forecasts() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![
            Field::new(TIME, timestamp_type(), false),
            Field::new("made_at", timestamp_type(), false),
            Field::new("horizon_s", DataType::Int64, false),
        ];
        fields.extend(series_fields());
        fields.extend([
            Field::new("metric", DataType::Utf8, false),
            Field::new("forecast", DataType::Float64, false),
            Field::new("lower_80", DataType::Float64, true),
            Field::new("upper_80", DataType::Float64, true),
            Field::new("lower_95", DataType::Float64, true),
            Field::new("upper_95", DataType::Float64, true),
            Field::new("method", DataType::Utf8, false),
            Field::new("interval_source", DataType::Utf8, false),
        ]);
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Schema of the `health` table: one row per change of a probed endpoint's health.
pub fn health() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new(TIME, timestamp_type(), false),
            Field::new("endpoint", DataType::Utf8, false),
            Field::new(REGION, DataType::Utf8, false),
            Field::new("service_name", DataType::Utf8, true),
            Field::new("healthy", DataType::Boolean, false),
            Field::new("previous", DataType::Boolean, false),
            Field::new("healthy_vantages", DataType::Int32, false),
            Field::new("vantages", DataType::Int32, false),
            Field::new("reason", DataType::Utf8, false),
        ]))
    });
    SCHEMA.clone()
}

/// Schema of the `recommendations` table: one row per recommendation made, and one per change
/// of its state (same `id`; the newest row is its current state).
pub fn recommendations() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new(TIME, timestamp_type(), false),
            Field::new("id", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new(REGION, DataType::Utf8, false),
            Field::new("service_name", DataType::Utf8, false),
            Field::new("target", DataType::Utf8, false),
            Field::new("previous", DataType::Utf8, true),
            Field::new("reason", DataType::Utf8, false),
            Field::new("evidence", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("expires_at", timestamp_type(), true),
        ]))
    });
    SCHEMA.clone()
}

/// `alerts`: every change of an alert's state (docs/schema.md).
pub fn alerts() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new(TIME, timestamp_type(), false),
            Field::new("alertname", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new(REGION, DataType::Utf8, true),
            Field::new("service_name", DataType::Utf8, true),
            Field::new("labels", DataType::Utf8, false),
            Field::new("annotations", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
            Field::new("starts_at", timestamp_type(), false),
            Field::new("ends_at", timestamp_type(), true),
            Field::new("fingerprint", DataType::Utf8, false),
            Field::new("evidence", DataType::Utf8, false),
        ]))
    });
    SCHEMA.clone()
}
