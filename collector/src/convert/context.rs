//! The resource and instrumentation-scope columns that every table repeats on each row.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::array::{ArrayRef, MapArray, StringArray, StringBuilder, UInt32Array, UInt32Builder};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attributes::{self, StringMapBuilder};
use super::{column, ConvertError};

/// Where a row came from: its resource and scope with their schema URLs.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// The resource (absent in the request → default).
    pub resource: Resource,
    /// The `ResourceX.schema_url`.
    pub resource_schema_url: String,
    /// The instrumentation scope (absent → default).
    pub scope: InstrumentationScope,
    /// The `ScopeX.schema_url`.
    pub scope_schema_url: String,
}

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

/// Reads the resource and scope columns of a batch back.
pub struct ContextReader<'a> {
    res_attrs: &'a MapArray,
    res_types: &'a MapArray,
    res_dropped: &'a UInt32Array,
    res_schema: &'a StringArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
    scope_attrs: &'a MapArray,
    scope_types: &'a MapArray,
    scope_dropped: &'a UInt32Array,
    scope_schema: &'a StringArray,
}

impl<'a> ContextReader<'a> {
    /// Finds the context columns in a batch.
    pub fn new(batch: &'a RecordBatch) -> Result<Self, ConvertError> {
        Ok(Self {
            res_attrs: column(batch, "resource_attributes")?,
            res_types: column(batch, "resource_attribute_types")?,
            res_dropped: column(batch, "resource_dropped_attributes_count")?,
            res_schema: column(batch, "resource_schema_url")?,
            scope_name: column(batch, "scope_name")?,
            scope_version: column(batch, "scope_version")?,
            scope_attrs: column(batch, "scope_attributes")?,
            scope_types: column(batch, "scope_attribute_types")?,
            scope_dropped: column(batch, "scope_dropped_attributes_count")?,
            scope_schema: column(batch, "scope_schema_url")?,
        })
    }

    /// The context of one row.
    pub fn read(&self, row: usize) -> Result<Context, ConvertError> {
        Ok(Context {
            resource: Resource {
                attributes: attributes::read(self.res_attrs, self.res_types, row)?,
                dropped_attributes_count: self.res_dropped.value(row),
                entity_refs: Vec::new(),
            },
            resource_schema_url: self.res_schema.value(row).to_owned(),
            scope: InstrumentationScope {
                name: self.scope_name.value(row).to_owned(),
                version: self.scope_version.value(row).to_owned(),
                attributes: attributes::read(self.scope_attrs, self.scope_types, row)?,
                dropped_attributes_count: self.scope_dropped.value(row),
            },
            scope_schema_url: self.scope_schema.value(row).to_owned(),
        })
    }
}

/// Groups consecutive rows by context: yields (context, row range) runs in order.
fn runs(
    reader: &ContextReader<'_>,
    rows: usize,
) -> Result<Vec<(Context, std::ops::Range<usize>)>, ConvertError> {
    let mut out: Vec<(Context, std::ops::Range<usize>)> = Vec::new();
    for row in 0..rows {
        let ctx = reader.read(row)?;
        match out.last_mut() {
            Some((last, range)) if *last == ctx => range.end = row + 1,
            _ => out.push((ctx, row..row + 1)),
        }
    }
    Ok(out)
}

/// Items of one scope, with the scope and its schema URL.
pub type ScopeGroup<T> = (InstrumentationScope, String, Vec<T>);

/// Items regrouped under their resource, the inverse of flattening a request into rows.
pub struct ResourceGroup<T> {
    /// The resource.
    pub resource: Resource,
    /// The resource's schema URL.
    pub schema_url: String,
    /// The scopes under it, in row order.
    pub scopes: Vec<ScopeGroup<T>>,
}

/// Regroups a batch's rows by resource and scope, turning each run of rows into items with `items`.
pub fn regroup<T>(
    batch: &RecordBatch,
    mut items: impl FnMut(std::ops::Range<usize>) -> Result<Vec<T>, ConvertError>,
) -> Result<Vec<ResourceGroup<T>>, ConvertError> {
    let reader = ContextReader::new(batch)?;
    let mut out: Vec<ResourceGroup<T>> = Vec::new();
    for (ctx, range) in runs(&reader, batch.num_rows())? {
        let scope = (ctx.scope, ctx.scope_schema_url, items(range)?);
        match out.last_mut() {
            Some(last)
                if last.resource == ctx.resource && last.schema_url == ctx.resource_schema_url =>
            {
                last.scopes.push(scope)
            }
            _ => out.push(ResourceGroup {
                resource: ctx.resource,
                schema_url: ctx.resource_schema_url,
                scopes: vec![scope],
            }),
        }
    }
    Ok(out)
}
