//! `ExportMetricsServiceRequest` ⇄ a `metrics` batch (one row per data point, of any point kind).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListArray, ListBuilder,
    RecordBatch, StringBuilder, StructArray, TimestampNanosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, Exemplar, ExponentialHistogramDataPoint, Gauge,
    HistogramDataPoint, Metric, NumberDataPoint, Sum, SummaryDataPoint,
};

use super::attributes::{self, StringMapBuilder};
use super::context::{ContextBuilder, RenderedContext};
use super::nested::NestedRows;
use super::traces::enum_name;
use super::{append_hex, fitted, promoted, ts, ConvertError, Converted, Rejections};
use crate::schema;

pub(super) const TEMPORALITY: [&str; 3] = ["unspecified", "delta", "cumulative"];

/// The fields every point kind shares, borrowed from the point.
struct Common<'a> {
    attributes: &'a [KeyValue],
    start: u64,
    time: u64,
    flags: u32,
    exemplars: &'a [Exemplar],
}

/// The metric a data point belongs to, as every one of its rows repeats it.
struct Row<'a> {
    region: &'a str,
    service: Option<&'a str>,
    metric: &'a Metric,
    kind: &'static str,
    temporality: Option<i32>,
    monotonic: Option<bool>,
}

/// What a data point holds beyond the fields every kind shares; `None` where its kind has no
/// such field (the column is null on its row).
#[derive(Default)]
struct Values<'a> {
    number: Option<number_data_point::Value>,
    count: Option<u64>,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    /// Bucket counts and explicit bounds (explicit-bucket histograms).
    buckets: Option<(&'a [u64], &'a [f64])>,
    exponential: Option<&'a ExponentialHistogramDataPoint>,
    quantiles: Option<&'a [ValueAtQuantile]>,
}

/// Column builders of the `metrics` table.
struct MetricsBuilder {
    time: TimestampNanosecondBuilder,
    start_time: TimestampNanosecondBuilder,
    region: StringBuilder,
    service: StringBuilder,
    name: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    kind: StringBuilder,
    temporality: StringBuilder,
    monotonic: BooleanBuilder,
    flags: UInt32Builder,
    value: Float64Builder,
    value_int: Int64Builder,
    count: UInt64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bucket_counts: ListBuilder<UInt64Builder>,
    explicit_bounds: ListBuilder<Float64Builder>,
    exp_scale: Int32Builder,
    exp_zero_count: UInt64Builder,
    exp_zero_threshold: Float64Builder,
    exp_pos_offset: Int32Builder,
    exp_pos_counts: ListBuilder<UInt64Builder>,
    exp_neg_offset: Int32Builder,
    exp_neg_counts: ListBuilder<UInt64Builder>,
    quantiles: QuantilesBuilder,
    exemplars: ExemplarsBuilder,
    attrs: StringMapBuilder,
    attr_types: StringMapBuilder,
    meta: StringMapBuilder,
    meta_types: StringMapBuilder,
    context: ContextBuilder,
}

/// Appends rows of the nullable `List<Struct<quantile_fields>>` column.
#[derive(Default)]
struct QuantilesBuilder {
    offsets: Vec<i32>,
    valid: Vec<bool>,
    quantile: Float64Builder,
    value: Float64Builder,
}

impl QuantilesBuilder {
    fn append(&mut self, quantiles: Option<&[ValueAtQuantile]>) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let items = quantiles.unwrap_or_default();
        for q in items {
            self.quantile.append_value(q.quantile);
            self.value.append_value(q.value);
        }
        self.valid.push(quantiles.is_some());
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(last + items.len() as i32);
    }

    fn finish(mut self) -> Result<ArrayRef, ConvertError> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let fields = schema::quantile_fields();
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.quantile.finish()),
            Arc::new(self.value.finish()),
        ];
        let structs = StructArray::try_new(fields.clone(), children, None)?;
        let item = Arc::new(Field::new("item", DataType::Struct(fields), true));
        let nulls = NullBuffer::from(self.valid);
        let list = ListArray::try_new(
            item,
            OffsetBuffer::new(self.offsets.into()),
            Arc::new(structs),
            Some(nulls),
        )?;
        Ok(Arc::new(list))
    }
}

/// Appends rows of the `List<Struct<exemplar_fields>>` column.
#[derive(Default)]
struct ExemplarsBuilder {
    rows: NestedRows,
    time: TimestampNanosecondBuilder,
    value: Float64Builder,
    value_int: Int64Builder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
}

impl ExemplarsBuilder {
    fn append(&mut self, exemplars: &[Exemplar]) {
        for e in exemplars {
            self.time.append_value(ts(e.time_unix_nano));
            let (v, i) = split_number(e.value.map(|v| match v {
                exemplar::Value::AsDouble(d) => number_data_point::Value::AsDouble(d),
                exemplar::Value::AsInt(i) => number_data_point::Value::AsInt(i),
            }));
            self.value.append_option(v);
            self.value_int.append_option(i);
            append_hex(&mut self.trace_id, &e.trace_id);
            append_hex(&mut self.span_id, &e.span_id);
            self.rows.attributes(&e.filtered_attributes);
        }
        self.rows.end_row(exemplars.len());
    }

    fn finish(mut self) -> Result<ArrayRef, ConvertError> {
        let before: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish().with_timezone("UTC")),
            Arc::new(self.value.finish()),
            Arc::new(self.value_int.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
        ];
        self.rows
            .finish(schema::exemplar_fields(), before, Vec::new())
    }
}

/// A number as (`value`, `value_int`): ints fill both so SQL can always read `value`.
fn split_number(v: Option<number_data_point::Value>) -> (Option<f64>, Option<i64>) {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => (Some(d), None),
        Some(number_data_point::Value::AsInt(i)) => (Some(i as f64), Some(i)),
        None => (None, None),
    }
}

impl MetricsBuilder {
    fn new() -> Self {
        Self {
            time: TimestampNanosecondBuilder::new(),
            start_time: TimestampNanosecondBuilder::new(),
            region: StringBuilder::new(),
            service: StringBuilder::new(),
            name: StringBuilder::new(),
            description: StringBuilder::new(),
            unit: StringBuilder::new(),
            kind: StringBuilder::new(),
            temporality: StringBuilder::new(),
            monotonic: BooleanBuilder::new(),
            flags: UInt32Builder::new(),
            value: Float64Builder::new(),
            value_int: Int64Builder::new(),
            count: UInt64Builder::new(),
            sum: Float64Builder::new(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            bucket_counts: ListBuilder::new(UInt64Builder::new()),
            explicit_bounds: ListBuilder::new(Float64Builder::new()),
            exp_scale: Int32Builder::new(),
            exp_zero_count: UInt64Builder::new(),
            exp_zero_threshold: Float64Builder::new(),
            exp_pos_offset: Int32Builder::new(),
            exp_pos_counts: ListBuilder::new(UInt64Builder::new()),
            exp_neg_offset: Int32Builder::new(),
            exp_neg_counts: ListBuilder::new(UInt64Builder::new()),
            quantiles: QuantilesBuilder::default(),
            exemplars: ExemplarsBuilder::default(),
            attrs: attributes::map_builder(),
            attr_types: attributes::map_builder(),
            meta: attributes::map_builder(),
            meta_types: attributes::map_builder(),
            context: ContextBuilder::default(),
        }
    }

    /// Appends one data point: the columns every kind shares, then `values` (null where the
    /// point's kind has no such field), then its resource and scope.
    fn append_point(
        &mut self,
        context: &RenderedContext<'_>,
        row: &Row<'_>,
        point: &Common<'_>,
        values: Values<'_>,
    ) {
        self.time.append_value(ts(point.time));
        self.start_time.append_value(ts(point.start));
        self.region.append_value(row.region);
        self.service.append_option(row.service);
        self.name.append_value(&row.metric.name);
        self.description.append_value(&row.metric.description);
        self.unit.append_value(&row.metric.unit);
        self.kind.append_value(row.kind);
        self.temporality
            .append_option(row.temporality.map(|t| enum_name(&TEMPORALITY, t)));
        self.monotonic.append_option(row.monotonic);
        self.flags.append_value(point.flags);
        self.exemplars.append(point.exemplars);
        attributes::append(&mut self.attrs, &mut self.attr_types, point.attributes);
        attributes::append(&mut self.meta, &mut self.meta_types, &row.metric.metadata);
        let (d, i) = split_number(values.number);
        self.value.append_option(d);
        self.value_int.append_option(i);
        self.count.append_option(values.count);
        self.sum.append_option(values.sum);
        self.min.append_option(values.min);
        self.max.append_option(values.max);
        append_list(&mut self.bucket_counts, values.buckets.map(|b| b.0));
        append_list(&mut self.explicit_bounds, values.buckets.map(|b| b.1));
        self.append_exponential(values.exponential);
        self.quantiles.append(values.quantiles);
        self.context.append(context);
    }

    fn append_exponential(&mut self, p: Option<&ExponentialHistogramDataPoint>) {
        self.exp_scale.append_option(p.map(|p| p.scale));
        self.exp_zero_count.append_option(p.map(|p| p.zero_count));
        self.exp_zero_threshold
            .append_option(p.map(|p| p.zero_threshold));
        let pos = p.and_then(|p| p.positive.as_ref());
        let neg = p.and_then(|p| p.negative.as_ref());
        self.exp_pos_offset.append_option(pos.map(|b| b.offset));
        append_list(
            &mut self.exp_pos_counts,
            pos.map(|b| b.bucket_counts.as_slice()),
        );
        self.exp_neg_offset.append_option(neg.map(|b| b.offset));
        append_list(
            &mut self.exp_neg_counts,
            neg.map(|b| b.bucket_counts.as_slice()),
        );
    }

    fn finish(mut self) -> Result<RecordBatch, ConvertError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish().with_timezone("UTC")),
            Arc::new(self.start_time.finish().with_timezone("UTC")),
            Arc::new(self.region.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.temporality.finish()),
            Arc::new(self.monotonic.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.value_int.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.explicit_bounds.finish()),
            Arc::new(self.exp_scale.finish()),
            Arc::new(self.exp_zero_count.finish()),
            Arc::new(self.exp_zero_threshold.finish()),
            Arc::new(self.exp_pos_offset.finish()),
            Arc::new(self.exp_pos_counts.finish()),
            Arc::new(self.exp_neg_offset.finish()),
            Arc::new(self.exp_neg_counts.finish()),
            self.quantiles.finish()?,
            self.exemplars.finish()?,
            Arc::new(self.attrs.finish()),
            Arc::new(self.attr_types.finish()),
            Arc::new(self.meta.finish()),
            Arc::new(self.meta_types.finish()),
        ];
        columns.extend(self.context.finish());
        Ok(RecordBatch::try_new(schema::metrics(), fitted(columns))?)
    }
}

fn append_list<B, T>(builder: &mut ListBuilder<B>, items: Option<&[T]>)
where
    B: arrow::array::ArrayBuilder + Extend<Option<T>>,
    T: Copy,
{
    match items {
        Some(items) => {
            builder.values().extend(items.iter().map(|v| Some(*v)));
            builder.append(true);
        }
        None => builder.append_null(),
    }
}

/// Converts a metrics export request to a `metrics` batch, one row per data point.
///
/// A metric without data has no point to store; it is counted as one rejected point.
pub fn metrics_to_arrow(
    request: &ExportMetricsServiceRequest,
    region: &str,
) -> Result<Converted, ConvertError> {
    let mut b = MetricsBuilder::new();
    let mut rejections = Rejections::default();
    for rm in &request.resource_metrics {
        let service =
            promoted::service_name(rm.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        let service = service.as_deref();
        for sm in &rm.scope_metrics {
            let rendered = RenderedContext::new(
                rm.resource.as_ref(),
                &rm.schema_url,
                sm.scope.as_ref(),
                &sm.schema_url,
            );
            for metric in &sm.metrics {
                let row = |kind, temporality, monotonic| Row {
                    region,
                    service,
                    metric,
                    kind,
                    temporality,
                    monotonic,
                };
                match &metric.data {
                    None => rejections.add(|| format!("metric `{}` has no data", metric.name)),
                    Some(Data::Gauge(Gauge { data_points }))
                    | Some(Data::Sum(Sum { data_points, .. })) => {
                        let row = match &metric.data {
                            Some(Data::Sum(s)) => {
                                row("sum", Some(s.aggregation_temporality), Some(s.is_monotonic))
                            }
                            _ => row("gauge", None, None),
                        };
                        for p in data_points {
                            let values = Values {
                                number: p.value,
                                ..Values::default()
                            };
                            b.append_point(&rendered, &row, &p.common(), values);
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        let row = row("histogram", Some(h.aggregation_temporality), None);
                        for p in &h.data_points {
                            let values = Values {
                                count: Some(p.count),
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                                buckets: Some((&p.bucket_counts, &p.explicit_bounds)),
                                ..Values::default()
                            };
                            b.append_point(&rendered, &row, &p.common(), values);
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        let t = Some(h.aggregation_temporality);
                        let row = row("exponential_histogram", t, None);
                        for p in &h.data_points {
                            let values = Values {
                                count: Some(p.count),
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                                exponential: Some(p),
                                ..Values::default()
                            };
                            b.append_point(&rendered, &row, &p.common(), values);
                        }
                    }
                    Some(Data::Summary(s)) => {
                        let row = row("summary", None, None);
                        for p in &s.data_points {
                            let values = Values {
                                count: Some(p.count),
                                sum: Some(p.sum),
                                quantiles: Some(&p.quantile_values),
                                ..Values::default()
                            };
                            b.append_point(&rendered, &row, &p.common(), values);
                        }
                    }
                }
            }
        }
    }
    Ok(rejections.into_converted(b.finish()?))
}

/// The fields every point kind shares.
trait Point {
    fn common(&self) -> Common<'_>;
}

macro_rules! point_with_exemplars {
    ($($t:ty),*) => {$(
        impl Point for $t {
            fn common(&self) -> Common<'_> {
                Common {
                    attributes: &self.attributes,
                    start: self.start_time_unix_nano,
                    time: self.time_unix_nano,
                    flags: self.flags,
                    exemplars: &self.exemplars,
                }
            }
        }
    )*};
}

point_with_exemplars!(
    NumberDataPoint,
    HistogramDataPoint,
    ExponentialHistogramDataPoint
);

impl Point for SummaryDataPoint {
    fn common(&self) -> Common<'_> {
        Common {
            attributes: &self.attributes,
            start: self.start_time_unix_nano,
            time: self.time_unix_nano,
            flags: self.flags,
            exemplars: &[],
        }
    }
}
