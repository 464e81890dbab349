//! The resource and instrumentation-scope columns that every table repeats on each row.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder, UInt32Builder};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attributes::{self, StringMapBuilder};

/// A resource and scope rendered once, then appended to every row under them.
pub struct RenderedContext<'a> {
    resource: attributes::Rendered,
    resource_dropped: u32,
    resource_schema_url: &'a str,
    scope_name: &'a str,
    scope_version: &'a str,
    scope: attributes::Rendered,
    scope_dropped: u32,
    scope_schema_url: &'a str,
}

impl<'a> RenderedContext<'a> {
    /// Renders a resource and scope (absent ones as defaults).
    pub fn new(
        resource: Option<&'a Resource>,
        resource_schema_url: &'a str,
        scope: Option<&'a InstrumentationScope>,
        scope_schema_url: &'a str,
    ) -> Self {
        let no_attrs: &[KeyValue] = &[];
        Self {
            resource: attributes::Rendered::new(resource.map_or(no_attrs, |r| &r.attributes)),
            resource_dropped: resource.map_or(0, |r| r.dropped_attributes_count),
            resource_schema_url,
            scope_name: scope.map_or("", |s| &s.name),
            scope_version: scope.map_or("", |s| &s.version),
            scope: attributes::Rendered::new(scope.map_or(no_attrs, |s| &s.attributes)),
            scope_dropped: scope.map_or(0, |s| s.dropped_attributes_count),
            scope_schema_url,
        }
    }
}

/// Builds the resource and scope columns, in schema order.
pub struct ContextBuilder {
    res_attrs: StringMapBuilder,
    res_types: StringMapBuilder,
    res_dropped: UInt32Builder,
    res_schema: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attrs: StringMapBuilder,
    scope_types: StringMapBuilder,
    scope_dropped: UInt32Builder,
    scope_schema: StringBuilder,
}

impl Default for ContextBuilder {
    fn default() -> Self {
        Self {
            res_attrs: attributes::map_builder(),
            res_types: attributes::map_builder(),
            res_dropped: UInt32Builder::new(),
            res_schema: StringBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attrs: attributes::map_builder(),
            scope_types: attributes::map_builder(),
            scope_dropped: UInt32Builder::new(),
            scope_schema: StringBuilder::new(),
        }
    }
}

impl ContextBuilder {
    /// Appends one row's resource and scope.
    pub fn append(&mut self, ctx: &RenderedContext<'_>) {
        ctx.resource
            .append_to(&mut self.res_attrs, &mut self.res_types);
        self.res_dropped.append_value(ctx.resource_dropped);
        self.res_schema.append_value(ctx.resource_schema_url);
        self.scope_name.append_value(ctx.scope_name);
        self.scope_version.append_value(ctx.scope_version);
        ctx.scope
            .append_to(&mut self.scope_attrs, &mut self.scope_types);
        self.scope_dropped.append_value(ctx.scope_dropped);
        self.scope_schema.append_value(ctx.scope_schema_url);
    }

    /// The finished columns, in the order of `schema::resource_and_scope_fields`.
    pub fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.res_attrs.finish()),
            Arc::new(self.res_types.finish()),
            Arc::new(self.res_dropped.finish()),
            Arc::new(self.res_schema.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            Arc::new(self.scope_attrs.finish()),
            Arc::new(self.scope_types.finish()),
            Arc::new(self.scope_dropped.finish()),
            Arc::new(self.scope_schema.finish()),
        ]
    }
}
