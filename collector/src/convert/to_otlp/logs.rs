//! A `logs` batch → `ExportLogsServiceRequest`.

use arrow::array::{
    Array, Int32Array, MapArray, RecordBatch, StringArray, TimestampNanosecondArray, UInt32Array,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

use super::{column, parse, read, read_hex, regroup};
use crate::convert::ConvertError;

/// Rebuilds the logs export request a `logs` batch was made from.
pub fn logs_from_arrow(batch: &RecordBatch) -> Result<ExportLogsServiceRequest, ConvertError> {
    let time: &TimestampNanosecondArray = column(batch, "time")?;
    let observed: &TimestampNanosecondArray = column(batch, "observed_time")?;
    let severity: &Int32Array = column(batch, "severity_number")?;
    let severity_text: &StringArray = column(batch, "severity_text")?;
    let body: &StringArray = column(batch, "body")?;
    let body_type: &StringArray = column(batch, "body_type")?;
    let trace_id: &StringArray = column(batch, "trace_id")?;
    let span_id: &StringArray = column(batch, "span_id")?;
    let flags: &UInt32Array = column(batch, "flags")?;
    let event_name: &StringArray = column(batch, "event_name")?;
    let attrs: &MapArray = column(batch, "attributes")?;
    let attr_types: &MapArray = column(batch, "attribute_types")?;
    let dropped: &UInt32Array = column(batch, "dropped_attributes_count")?;

    let record_at = |row: usize| -> Result<LogRecord, ConvertError> {
        let body = if body.is_null(row) {
            None
        } else {
            let kind = (!body_type.is_null(row)).then(|| body_type.value(row));
            parse(body.value(row), kind)?
        };
        Ok(LogRecord {
            time_unix_nano: time.value(row) as u64,
            observed_time_unix_nano: observed.value(row) as u64,
            severity_number: severity.value(row),
            severity_text: severity_text.value(row).to_owned(),
            body,
            attributes: read(attrs, attr_types, row)?,
            dropped_attributes_count: dropped.value(row),
            flags: flags.value(row),
            trace_id: read_hex(trace_id, row)?,
            span_id: read_hex(span_id, row)?,
            event_name: event_name.value(row).to_owned(),
        })
    };

    let resource_logs = regroup(batch, |range| range.map(record_at).collect())?
        .into_iter()
        .map(|group| ResourceLogs {
            resource: Some(group.resource),
            scope_logs: group
                .scopes
                .into_iter()
                .map(|(scope, schema_url, log_records)| ScopeLogs {
                    scope: Some(scope),
                    log_records,
                    schema_url,
                })
                .collect(),
            schema_url: group.schema_url,
        })
        .collect();
    Ok(ExportLogsServiceRequest { resource_logs })
}
