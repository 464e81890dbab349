//! A `spans` batch → `ExportTraceServiceRequest`.

use arrow::array::{
    Array, ListArray, MapArray, RecordBatch, StringArray, StructArray, TimestampNanosecondArray,
    UInt32Array,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::{column, downcast, enum_value, read, read_hex, regroup};
use crate::convert::traces::{KINDS, STATUS};
use crate::convert::ConvertError;

/// Rebuilds the trace export request a `spans` batch was made from.
pub fn traces_from_arrow(batch: &RecordBatch) -> Result<ExportTraceServiceRequest, ConvertError> {
    let time: &TimestampNanosecondArray = column(batch, "time")?;
    let end: &TimestampNanosecondArray = column(batch, "end_time")?;
    let trace_id: &StringArray = column(batch, "trace_id")?;
    let span_id: &StringArray = column(batch, "span_id")?;
    let parent: &StringArray = column(batch, "parent_span_id")?;
    let trace_state: &StringArray = column(batch, "trace_state")?;
    let flags: &UInt32Array = column(batch, "flags")?;
    let name: &StringArray = column(batch, "name")?;
    let kind: &StringArray = column(batch, "kind")?;
    let status_code: &StringArray = column(batch, "status_code")?;
    let status_message: &StringArray = column(batch, "status_message")?;
    let attrs: &MapArray = column(batch, "attributes")?;
    let attr_types: &MapArray = column(batch, "attribute_types")?;
    let dropped_attrs: &UInt32Array = column(batch, "dropped_attributes_count")?;
    let events: &ListArray = column(batch, "events")?;
    let dropped_events: &UInt32Array = column(batch, "dropped_events_count")?;
    let links: &ListArray = column(batch, "links")?;
    let dropped_links: &UInt32Array = column(batch, "dropped_links_count")?;
    let span_at = |row: usize| -> Result<Span, ConvertError> {
        let status = Status {
            message: status_message.value(row).to_owned(),
            code: enum_value(&STATUS, status_code.value(row))?,
        };
        Ok(Span {
            trace_id: read_hex(trace_id, row)?,
            span_id: read_hex(span_id, row)?,
            trace_state: trace_state.value(row).to_owned(),
            parent_span_id: read_hex(parent, row)?,
            flags: flags.value(row),
            name: name.value(row).to_owned(),
            kind: enum_value(&KINDS, kind.value(row))?,
            start_time_unix_nano: time.value(row) as u64,
            end_time_unix_nano: end.value(row) as u64,
            attributes: read(attrs, attr_types, row)?,
            dropped_attributes_count: dropped_attrs.value(row),
            events: read_events(events, row)?,
            dropped_events_count: dropped_events.value(row),
            links: read_links(links, row)?,
            dropped_links_count: dropped_links.value(row),
            status: (status != Status::default()).then_some(status),
        })
    };

    let resource_spans = regroup(batch, |range| range.map(span_at).collect())?
        .into_iter()
        .map(|group| ResourceSpans {
            resource: Some(group.resource),
            scope_spans: group
                .scopes
                .into_iter()
                .map(|(scope, schema_url, spans)| ScopeSpans {
                    scope: Some(scope),
                    spans,
                    schema_url,
                })
                .collect(),
            schema_url: group.schema_url,
        })
        .collect();
    Ok(ExportTraceServiceRequest { resource_spans })
}

fn read_events(list: &ListArray, row: usize) -> Result<Vec<Event>, ConvertError> {
    let items = list.value(row);
    let s: StructArray = downcast(&items, "events")?;
    let time: TimestampNanosecondArray = downcast(s.column(0), "events.time")?;
    let name: StringArray = downcast(s.column(1), "events.name")?;
    let attrs: MapArray = downcast(s.column(2), "events.attributes")?;
    let types: MapArray = downcast(s.column(3), "events.attribute_types")?;
    let dropped: UInt32Array = downcast(s.column(4), "events.dropped_attributes_count")?;
    (0..s.len())
        .map(|i| {
            Ok(Event {
                time_unix_nano: time.value(i) as u64,
                name: name.value(i).to_owned(),
                attributes: read(&attrs, &types, i)?,
                dropped_attributes_count: dropped.value(i),
            })
        })
        .collect()
}

fn read_links(list: &ListArray, row: usize) -> Result<Vec<Link>, ConvertError> {
    let items = list.value(row);
    let s: StructArray = downcast(&items, "links")?;
    let trace_id: StringArray = downcast(s.column(0), "links.trace_id")?;
    let span_id: StringArray = downcast(s.column(1), "links.span_id")?;
    let state: StringArray = downcast(s.column(2), "links.trace_state")?;
    let flags: UInt32Array = downcast(s.column(3), "links.flags")?;
    let attrs: MapArray = downcast(s.column(4), "links.attributes")?;
    let types: MapArray = downcast(s.column(5), "links.attribute_types")?;
    let dropped: UInt32Array = downcast(s.column(6), "links.dropped_attributes_count")?;
    (0..s.len())
        .map(|i| {
            Ok(Link {
                trace_id: read_hex(&trace_id, i)?,
                span_id: read_hex(&span_id, i)?,
                trace_state: state.value(i).to_owned(),
                attributes: read(&attrs, &types, i)?,
                dropped_attributes_count: dropped.value(i),
                flags: flags.value(i),
            })
        })
        .collect()
}
