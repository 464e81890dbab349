//! `ExportLogsServiceRequest` ⇄ a `logs` batch (one row per log record).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::attributes;
use super::context::{ContextBuilder, RenderedContext};
use super::{append_hex, check_id, fitted, ts, ConvertError, Converted, Rejections};
use crate::schema;

/// Converts a logs export request to a `logs` batch, stamping `region` on every row.
///
/// Records whose trace or span id is present but malformed are rejected; the rest are kept.
pub fn logs_to_arrow(
    request: &ExportLogsServiceRequest,
    region: &str,
) -> Result<Converted, ConvertError> {
    let mut rejections = Rejections::default();
    let mut time = TimestampNanosecondBuilder::new();
    let mut observed = TimestampNanosecondBuilder::new();
    let mut region_col = StringBuilder::new();
    let mut service = StringBuilder::new();
    let mut severity = Int32Builder::new();
    let mut severity_text = StringBuilder::new();
    let mut body = StringBuilder::new();
    let mut body_type = StringBuilder::new();
    let mut trace_id = StringBuilder::new();
    let mut span_id = StringBuilder::new();
    let mut flags = UInt32Builder::new();
    let mut event_name = StringBuilder::new();
    let mut attrs = attributes::map_builder();
    let mut attr_types = attributes::map_builder();
    let mut dropped = UInt32Builder::new();
    let mut context = ContextBuilder::default();

    for rl in &request.resource_logs {
        let svc =
            super::promoted::service_name(rl.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        for sl in &rl.scope_logs {
            let ctx = RenderedContext::new(
                rl.resource.as_ref(),
                &rl.schema_url,
                sl.scope.as_ref(),
                &sl.schema_url,
            );
            for record in &sl.log_records {
                let ids = check_id(&record.trace_id, 16, "trace_id", true)
                    .and_then(|()| check_id(&record.span_id, 8, "span_id", true));
                if let Err(msg) = ids {
                    rejections.add(|| format!("log record rejected: {msg}"));
                    continue;
                }
                time.append_value(ts(record.time_unix_nano));
                observed.append_value(ts(record.observed_time_unix_nano));
                region_col.append_value(region);
                service.append_option(svc.as_deref());
                severity.append_value(record.severity_number);
                severity_text.append_value(&record.severity_text);
                match &record.body {
                    None => {
                        body.append_null();
                        body_type.append_null();
                    }
                    Some(value) => {
                        let (text, kind) = attributes::render(Some(value));
                        body.append_value(text);
                        body_type.append_option(kind);
                    }
                }
                append_hex(&mut trace_id, &record.trace_id);
                append_hex(&mut span_id, &record.span_id);
                flags.append_value(record.flags);
                event_name.append_value(&record.event_name);
                attributes::append(&mut attrs, &mut attr_types, &record.attributes);
                dropped.append_value(record.dropped_attributes_count);
                context.append(&ctx);
            }
        }
    }

    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish().with_timezone("UTC")),
        Arc::new(observed.finish().with_timezone("UTC")),
        Arc::new(region_col.finish()),
        Arc::new(service.finish()),
        Arc::new(severity.finish()),
        Arc::new(severity_text.finish()),
        Arc::new(body.finish()),
        Arc::new(body_type.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(flags.finish()),
        Arc::new(event_name.finish()),
        Arc::new(attrs.finish()),
        Arc::new(attr_types.finish()),
        Arc::new(dropped.finish()),
    ];
    columns.extend(context.finish());
    let batch = RecordBatch::try_new(schema::logs(), fitted(columns))?;
    Ok(rejections.into_converted(batch))
}
