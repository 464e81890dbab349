//! `ExportTraceServiceRequest` ⇄ a `spans` batch (one row per span).

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
    UInt32Builder,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};

use super::attributes;
use super::context::{ContextBuilder, RenderedContext};
use super::nested::NestedRows;
use super::{
    append_hex, check_id, fitted, promoted, ts, with_hex, ConvertError, Converted, Rejections,
};
use crate::schema;

pub(super) const KINDS: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];
pub(super) const STATUS: [&str; 3] = ["unset", "ok", "error"];

/// Name of an enum value, or its number when the name is unknown (kept losslessly).
pub(crate) fn enum_name(names: &[&'static str], value: i32) -> Cow<'static, str> {
    usize::try_from(value)
        .ok()
        .and_then(|i| names.get(i))
        .map_or_else(|| Cow::Owned(value.to_string()), |s| Cow::Borrowed(*s))
}

/// A string builder sized for `rows` values of about `avg` bytes, so it does not regrow.
fn strings(rows: usize, avg: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * avg)
}

/// Appends rows of `List<Struct<event_fields>>`.
#[derive(Default)]
struct EventsBuilder {
    rows: NestedRows,
    time: TimestampNanosecondBuilder,
    name: StringBuilder,
    dropped: UInt32Builder,
}

impl EventsBuilder {
    fn append(&mut self, events: &[Event]) {
        for e in events {
            self.time.append_value(ts(e.time_unix_nano));
            self.name.append_value(&e.name);
            self.rows.attributes(&e.attributes);
            self.dropped.append_value(e.dropped_attributes_count);
        }
        self.rows.end_row(events.len());
    }

    fn finish(mut self) -> Result<ArrayRef, ConvertError> {
        let before: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish().with_timezone("UTC")),
            Arc::new(self.name.finish()),
        ];
        self.rows.finish(
            schema::event_fields(),
            before,
            vec![Arc::new(self.dropped.finish())],
        )
    }
}

/// Appends rows of `List<Struct<link_fields>>`.
#[derive(Default)]
struct LinksBuilder {
    rows: NestedRows,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    dropped: UInt32Builder,
}

impl LinksBuilder {
    fn append(&mut self, links: &[Link]) {
        for l in links {
            with_hex(&l.trace_id, |h| self.trace_id.append_value(h));
            with_hex(&l.span_id, |h| self.span_id.append_value(h));
            self.trace_state.append_value(&l.trace_state);
            self.flags.append_value(l.flags);
            self.rows.attributes(&l.attributes);
            self.dropped.append_value(l.dropped_attributes_count);
        }
        self.rows.end_row(links.len());
    }

    fn finish(mut self) -> Result<ArrayRef, ConvertError> {
        let before: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
        ];
        self.rows.finish(
            schema::link_fields(),
            before,
            vec![Arc::new(self.dropped.finish())],
        )
    }
}

/// Converts a trace export request to a `spans` batch, stamping `region` on every row.
///
/// Spans with an invalid trace or span id are rejected (counted in the result), the rest kept.
pub fn traces_to_arrow(
    request: &ExportTraceServiceRequest,
    region: &str,
) -> Result<Converted, ConvertError> {
    let capacity: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut rejections = Rejections::default();
    let mut time = TimestampNanosecondBuilder::with_capacity(capacity);
    let mut end_time = TimestampNanosecondBuilder::with_capacity(capacity);
    let mut duration = Int64Builder::with_capacity(capacity);
    let mut region_col = strings(capacity, 16);
    let mut service = strings(capacity, 16);
    let mut trace_id = strings(capacity, 32);
    let mut span_id = strings(capacity, 16);
    let mut parent = strings(capacity, 16);
    let mut trace_state = strings(capacity, 16);
    let mut flags = UInt32Builder::with_capacity(capacity);
    let mut name = strings(capacity, 16);
    let mut kind = strings(capacity, 16);
    let mut status_code = strings(capacity, 16);
    let mut status_message = strings(capacity, 16);
    let mut method = strings(capacity, 16);
    let mut route = strings(capacity, 16);
    let mut path = strings(capacity, 16);
    let mut http_status = Int32Builder::with_capacity(capacity);
    let mut server = strings(capacity, 16);
    let mut peer = strings(capacity, 16);
    let mut cloud_region = strings(capacity, 16);
    let mut environment = strings(capacity, 16);
    let mut attrs = attributes::map_builder_with_capacity(capacity, 8);
    let mut attr_types = attributes::map_builder_with_capacity(capacity, 1);
    let mut dropped_attrs = UInt32Builder::with_capacity(capacity);
    let mut events = EventsBuilder::default();
    let mut dropped_events = UInt32Builder::with_capacity(capacity);
    let mut links = LinksBuilder::default();
    let mut dropped_links = UInt32Builder::with_capacity(capacity);
    let mut context = ContextBuilder::default();

    for rs in &request.resource_spans {
        let res_attrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        let svc = promoted::service_name(res_attrs);
        let env = promoted::deployment_environment(res_attrs);
        for ss in &rs.scope_spans {
            let ctx = RenderedContext::new(
                rs.resource.as_ref(),
                &rs.schema_url,
                ss.scope.as_ref(),
                &ss.schema_url,
            );
            for span in &ss.spans {
                let ids = check_id(&span.trace_id, 16, "trace_id", false)
                    .and_then(|()| check_id(&span.span_id, 8, "span_id", false))
                    .and_then(|()| check_id(&span.parent_span_id, 8, "parent_span_id", true));
                if let Err(msg) = ids {
                    rejections.add(|| format!("span `{}` rejected: {msg}", span.name));
                    continue;
                }
                time.append_value(ts(span.start_time_unix_nano));
                end_time.append_value(ts(span.end_time_unix_nano));
                duration.append_value(
                    ts(span.end_time_unix_nano).saturating_sub(ts(span.start_time_unix_nano)),
                );
                region_col.append_value(region);
                service.append_option(svc.as_deref());
                append_hex(&mut trace_id, &span.trace_id);
                append_hex(&mut span_id, &span.span_id);
                append_hex(&mut parent, &span.parent_span_id);
                trace_state.append_value(&span.trace_state);
                flags.append_value(span.flags);
                name.append_value(&span.name);
                kind.append_value(enum_name(&KINDS, span.kind));
                let (code, message) = span
                    .status
                    .as_ref()
                    .map_or((0, ""), |s| (s.code, s.message.as_str()));
                status_code.append_value(enum_name(&STATUS, code));
                status_message.append_value(message);
                let a = &span.attributes;
                method.append_option(promoted::http_method(a));
                route.append_option(promoted::http_route(a));
                path.append_option(promoted::url_path(a));
                http_status.append_option(promoted::http_status(a));
                server.append_option(promoted::server_address(a));
                peer.append_option(promoted::peer_service(a));
                cloud_region.append_option(promoted::cloud_region(res_attrs, a));
                environment.append_option(env.as_deref());
                attributes::append(&mut attrs, &mut attr_types, a);
                dropped_attrs.append_value(span.dropped_attributes_count);
                events.append(&span.events);
                dropped_events.append_value(span.dropped_events_count);
                links.append(&span.links);
                dropped_links.append_value(span.dropped_links_count);
                context.append(&ctx);
            }
        }
    }

    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish().with_timezone("UTC")),
        Arc::new(end_time.finish().with_timezone("UTC")),
        Arc::new(duration.finish()),
        Arc::new(region_col.finish()),
        Arc::new(service.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent.finish()),
        Arc::new(trace_state.finish()),
        Arc::new(flags.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(status_code.finish()),
        Arc::new(status_message.finish()),
        Arc::new(method.finish()),
        Arc::new(route.finish()),
        Arc::new(path.finish()),
        Arc::new(http_status.finish()),
        Arc::new(server.finish()),
        Arc::new(peer.finish()),
        Arc::new(cloud_region.finish()),
        Arc::new(environment.finish()),
        Arc::new(attrs.finish()),
        Arc::new(attr_types.finish()),
        Arc::new(dropped_attrs.finish()),
        events.finish()?,
        Arc::new(dropped_events.finish()),
        links.finish()?,
        Arc::new(dropped_links.finish()),
    ];
    columns.extend(context.finish());
    let batch = RecordBatch::try_new(schema::spans(), fitted(columns))?;
    Ok(rejections.into_converted(batch))
}
