//! `ExportMetricsServiceRequest` ⇄ a `metrics` batch (one row per data point, of any point kind).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int32Array,
    Int32Builder, Int64Array, Int64Builder, ListArray, ListBuilder, MapArray, RecordBatch,
    StringArray, StringBuilder, StructArray, TimestampNanosecondArray, TimestampNanosecondBuilder,
    UInt32Array, UInt32Builder, UInt64Array, UInt64Builder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};

use super::attributes::{self, StringMapBuilder};
use super::context::{regroup, ContextBuilder, RenderedContext};
use super::nested::NestedRows;
use super::traces::{enum_name, enum_value};
use super::{
    append_hex, column, downcast, promoted, read_hex, ts, ConvertError, Converted, Rejections,
};
use crate::schema;

const TEMPORALITY: [&str; 3] = ["unspecified", "delta", "cumulative"];

/// The fields every point kind shares, borrowed from the point.
struct Common<'a> {
    attributes: &'a [KeyValue],
    start: u64,
    time: u64,
    flags: u32,
    exemplars: &'a [Exemplar],
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

    /// Appends the columns common to all kinds and nulls for the kind-specific ones; the caller
    /// then overwrites nothing — kind-specific columns are appended by `append_*` below.
    #[allow(clippy::too_many_arguments)]
    fn append_common(
        &mut self,
        region: &str,
        service: Option<&str>,
        metric: &Metric,
        kind: &str,
        temporality: Option<i32>,
        monotonic: Option<bool>,
        point: &Common<'_>,
    ) {
        self.time.append_value(ts(point.time));
        self.start_time.append_value(ts(point.start));
        self.region.append_value(region);
        self.service.append_option(service);
        self.name.append_value(&metric.name);
        self.description.append_value(&metric.description);
        self.unit.append_value(&metric.unit);
        self.kind.append_value(kind);
        self.temporality
            .append_option(temporality.map(|t| enum_name(&TEMPORALITY, t)));
        self.monotonic.append_option(monotonic);
        self.flags.append_value(point.flags);
        self.exemplars.append(point.exemplars);
        attributes::append(&mut self.attrs, &mut self.attr_types, point.attributes);
        attributes::append(&mut self.meta, &mut self.meta_types, &metric.metadata);
    }

    fn append_number(&mut self, v: Option<number_data_point::Value>) {
        let (d, i) = split_number(v);
        self.value.append_option(d);
        self.value_int.append_option(i);
    }

    /// count, sum, min, max (histogram family and summary).
    fn append_stats(
        &mut self,
        count: Option<u64>,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
    ) {
        self.count.append_option(count);
        self.sum.append_option(sum);
        self.min.append_option(min);
        self.max.append_option(max);
    }

    fn append_buckets(&mut self, counts: Option<&[u64]>, bounds: Option<&[f64]>) {
        append_list(&mut self.bucket_counts, counts);
        append_list(&mut self.explicit_bounds, bounds);
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
        Ok(RecordBatch::try_new(schema::metrics(), columns)?)
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
            let ctx = |b: &mut MetricsBuilder| b.context.append(&rendered);
            for metric in &sm.metrics {
                match &metric.data {
                    None => rejections.add(|| format!("metric `{}` has no data", metric.name)),
                    Some(Data::Gauge(Gauge { data_points }))
                    | Some(Data::Sum(Sum { data_points, .. })) => {
                        let (kind, t, monotonic) = match &metric.data {
                            Some(Data::Sum(s)) => {
                                ("sum", Some(s.aggregation_temporality), Some(s.is_monotonic))
                            }
                            _ => ("gauge", None, None),
                        };
                        for p in data_points {
                            b.append_common(
                                region,
                                service,
                                metric,
                                kind,
                                t,
                                monotonic,
                                &p.common(),
                            );
                            b.append_number(p.value);
                            b.append_stats(None, None, None, None);
                            b.append_buckets(None, None);
                            b.append_exponential(None);
                            b.quantiles.append(None);
                            ctx(&mut b);
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            let common = p.common();
                            let t = Some(h.aggregation_temporality);
                            b.append_common(region, service, metric, "histogram", t, None, &common);
                            b.append_number(None);
                            b.append_stats(Some(p.count), p.sum, p.min, p.max);
                            b.append_buckets(Some(&p.bucket_counts), Some(&p.explicit_bounds));
                            b.append_exponential(None);
                            b.quantiles.append(None);
                            ctx(&mut b);
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            let common = p.common();
                            let t = Some(h.aggregation_temporality);
                            b.append_common(
                                region,
                                service,
                                metric,
                                "exponential_histogram",
                                t,
                                None,
                                &common,
                            );
                            b.append_number(None);
                            b.append_stats(Some(p.count), p.sum, p.min, p.max);
                            b.append_buckets(None, None);
                            b.append_exponential(Some(p));
                            b.quantiles.append(None);
                            ctx(&mut b);
                        }
                    }
                    Some(Data::Summary(s)) => {
                        for p in &s.data_points {
                            let common = p.common();
                            b.append_common(
                                region, service, metric, "summary", None, None, &common,
                            );
                            b.append_number(None);
                            b.append_stats(Some(p.count), Some(p.sum), None, None);
                            b.append_buckets(None, None);
                            b.append_exponential(None);
                            b.quantiles.append(Some(&p.quantile_values));
                            ctx(&mut b);
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

/// Column readers of a `metrics` batch.
struct MetricsReader<'a> {
    time: &'a TimestampNanosecondArray,
    start: &'a TimestampNanosecondArray,
    name: &'a StringArray,
    description: &'a StringArray,
    unit: &'a StringArray,
    kind: &'a StringArray,
    temporality: &'a StringArray,
    monotonic: &'a BooleanArray,
    flags: &'a UInt32Array,
    value: &'a Float64Array,
    value_int: &'a Int64Array,
    count: &'a UInt64Array,
    sum: &'a Float64Array,
    min: &'a Float64Array,
    max: &'a Float64Array,
    bucket_counts: &'a ListArray,
    explicit_bounds: &'a ListArray,
    exp_scale: &'a Int32Array,
    exp_zero_count: &'a UInt64Array,
    exp_zero_threshold: &'a Float64Array,
    exp_pos_offset: &'a Int32Array,
    exp_pos_counts: &'a ListArray,
    exp_neg_offset: &'a Int32Array,
    exp_neg_counts: &'a ListArray,
    quantiles: &'a ListArray,
    exemplars: &'a ListArray,
    attrs: &'a MapArray,
    attr_types: &'a MapArray,
    meta: &'a MapArray,
    meta_types: &'a MapArray,
}

fn opt<A: Array, T>(a: &A, row: usize, get: impl Fn(&A, usize) -> T) -> Option<T> {
    (!a.is_null(row)).then(|| get(a, row))
}

fn u64s(list: &ListArray, row: usize) -> Result<Vec<u64>, ConvertError> {
    let v: UInt64Array = downcast(&list.value(row), "bucket counts")?;
    Ok(v.values().to_vec())
}

fn f64s(list: &ListArray, row: usize) -> Result<Vec<f64>, ConvertError> {
    let v: Float64Array = downcast(&list.value(row), "bounds")?;
    Ok(v.values().to_vec())
}

impl<'a> MetricsReader<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, ConvertError> {
        Ok(Self {
            time: column(batch, "time")?,
            start: column(batch, "start_time")?,
            name: column(batch, "name")?,
            description: column(batch, "description")?,
            unit: column(batch, "unit")?,
            kind: column(batch, "kind")?,
            temporality: column(batch, "temporality")?,
            monotonic: column(batch, "is_monotonic")?,
            flags: column(batch, "flags")?,
            value: column(batch, "value")?,
            value_int: column(batch, "value_int")?,
            count: column(batch, "count")?,
            sum: column(batch, "sum")?,
            min: column(batch, "min")?,
            max: column(batch, "max")?,
            bucket_counts: column(batch, "bucket_counts")?,
            explicit_bounds: column(batch, "explicit_bounds")?,
            exp_scale: column(batch, "exp_scale")?,
            exp_zero_count: column(batch, "exp_zero_count")?,
            exp_zero_threshold: column(batch, "exp_zero_threshold")?,
            exp_pos_offset: column(batch, "exp_positive_offset")?,
            exp_pos_counts: column(batch, "exp_positive_bucket_counts")?,
            exp_neg_offset: column(batch, "exp_negative_offset")?,
            exp_neg_counts: column(batch, "exp_negative_bucket_counts")?,
            quantiles: column(batch, "quantiles")?,
            exemplars: column(batch, "exemplars")?,
            attrs: column(batch, "attributes")?,
            attr_types: column(batch, "attribute_types")?,
            meta: column(batch, "metadata_attributes")?,
            meta_types: column(batch, "metadata_attribute_types")?,
        })
    }

    /// The metric (without points) a row belongs to: rows with equal metrics are merged.
    fn metric(
        &self,
        row: usize,
    ) -> Result<(Metric, String, Option<i32>, Option<bool>), ConvertError> {
        let metric = Metric {
            name: self.name.value(row).to_owned(),
            description: self.description.value(row).to_owned(),
            unit: self.unit.value(row).to_owned(),
            metadata: attributes::read(self.meta, self.meta_types, row)?,
            data: None,
        };
        let temporality = opt(self.temporality, row, |a, i| a.value(i).to_owned())
            .map(|t| enum_value(&TEMPORALITY, &t))
            .transpose()?;
        let monotonic = opt(self.monotonic, row, |a, i| a.value(i));
        Ok((
            metric,
            self.kind.value(row).to_owned(),
            temporality,
            monotonic,
        ))
    }

    fn exemplars(&self, row: usize) -> Result<Vec<Exemplar>, ConvertError> {
        let s: StructArray = downcast(&self.exemplars.value(row), "exemplars")?;
        let time: TimestampNanosecondArray = downcast(s.column(0), "exemplars.time")?;
        let value: Float64Array = downcast(s.column(1), "exemplars.value")?;
        let value_int: Int64Array = downcast(s.column(2), "exemplars.value_int")?;
        let trace_id: StringArray = downcast(s.column(3), "exemplars.trace_id")?;
        let span_id: StringArray = downcast(s.column(4), "exemplars.span_id")?;
        let attrs: MapArray = downcast(s.column(5), "exemplars.filtered_attributes")?;
        let types: MapArray = downcast(s.column(6), "exemplars.filtered_attribute_types")?;
        (0..s.len())
            .map(|i| {
                let value = if !value_int.is_null(i) {
                    Some(exemplar::Value::AsInt(value_int.value(i)))
                } else {
                    opt(&value, i, |a, i| exemplar::Value::AsDouble(a.value(i)))
                };
                Ok(Exemplar {
                    filtered_attributes: attributes::read(&attrs, &types, i)?,
                    time_unix_nano: time.value(i) as u64,
                    span_id: read_hex(&span_id, i)?,
                    trace_id: read_hex(&trace_id, i)?,
                    value,
                })
            })
            .collect()
    }

    fn number(&self, row: usize) -> Result<NumberDataPoint, ConvertError> {
        let value = if !self.value_int.is_null(row) {
            Some(number_data_point::Value::AsInt(self.value_int.value(row)))
        } else {
            opt(self.value, row, |a, i| {
                number_data_point::Value::AsDouble(a.value(i))
            })
        };
        Ok(NumberDataPoint {
            attributes: attributes::read(self.attrs, self.attr_types, row)?,
            start_time_unix_nano: self.start.value(row) as u64,
            time_unix_nano: self.time.value(row) as u64,
            exemplars: self.exemplars(row)?,
            flags: self.flags.value(row),
            value,
        })
    }

    fn histogram(&self, row: usize) -> Result<HistogramDataPoint, ConvertError> {
        Ok(HistogramDataPoint {
            attributes: attributes::read(self.attrs, self.attr_types, row)?,
            start_time_unix_nano: self.start.value(row) as u64,
            time_unix_nano: self.time.value(row) as u64,
            count: self.count.value(row),
            sum: opt(self.sum, row, |a, i| a.value(i)),
            bucket_counts: u64s(self.bucket_counts, row)?,
            explicit_bounds: f64s(self.explicit_bounds, row)?,
            exemplars: self.exemplars(row)?,
            flags: self.flags.value(row),
            min: opt(self.min, row, |a, i| a.value(i)),
            max: opt(self.max, row, |a, i| a.value(i)),
        })
    }

    fn exponential(&self, row: usize) -> Result<ExponentialHistogramDataPoint, ConvertError> {
        let buckets =
            |offset: &Int32Array, counts: &ListArray| -> Result<Option<Buckets>, ConvertError> {
                if offset.is_null(row) {
                    return Ok(None);
                }
                Ok(Some(Buckets {
                    offset: offset.value(row),
                    bucket_counts: u64s(counts, row)?,
                }))
            };
        Ok(ExponentialHistogramDataPoint {
            attributes: attributes::read(self.attrs, self.attr_types, row)?,
            start_time_unix_nano: self.start.value(row) as u64,
            time_unix_nano: self.time.value(row) as u64,
            count: self.count.value(row),
            sum: opt(self.sum, row, |a, i| a.value(i)),
            scale: self.exp_scale.value(row),
            zero_count: self.exp_zero_count.value(row),
            positive: buckets(self.exp_pos_offset, self.exp_pos_counts)?,
            negative: buckets(self.exp_neg_offset, self.exp_neg_counts)?,
            flags: self.flags.value(row),
            exemplars: self.exemplars(row)?,
            min: opt(self.min, row, |a, i| a.value(i)),
            max: opt(self.max, row, |a, i| a.value(i)),
            zero_threshold: self.exp_zero_threshold.value(row),
        })
    }

    fn summary(&self, row: usize) -> Result<SummaryDataPoint, ConvertError> {
        let s: StructArray = downcast(&self.quantiles.value(row), "quantiles")?;
        let q: Float64Array = downcast(s.column(0), "quantiles.quantile")?;
        let v: Float64Array = downcast(s.column(1), "quantiles.value")?;
        Ok(SummaryDataPoint {
            attributes: attributes::read(self.attrs, self.attr_types, row)?,
            start_time_unix_nano: self.start.value(row) as u64,
            time_unix_nano: self.time.value(row) as u64,
            count: self.count.value(row),
            sum: self.sum.value(row),
            quantile_values: (0..s.len())
                .map(|i| ValueAtQuantile {
                    quantile: q.value(i),
                    value: v.value(i),
                })
                .collect(),
            flags: self.flags.value(row),
        })
    }

    /// Rebuilds the metrics of a run of rows, merging consecutive rows of the same metric.
    fn metrics(&self, range: std::ops::Range<usize>) -> Result<Vec<Metric>, ConvertError> {
        let mut out: Vec<(Metric, String, Option<i32>, Option<bool>)> = Vec::new();
        for row in range {
            let key = self.metric(row)?;
            let same = out.last().is_some_and(|last| {
                last.0.name == key.0.name
                    && last.0.description == key.0.description
                    && last.0.unit == key.0.unit
                    && last.0.metadata == key.0.metadata
                    && last.1 == key.1
                    && last.2 == key.2
                    && last.3 == key.3
            });
            if !same {
                out.push(key);
            }
            let Some((metric, kind, temporality, monotonic)) = out.last_mut() else {
                continue;
            };
            let t = temporality.unwrap_or_default();
            let data = metric.data.get_or_insert_with(|| match kind.as_str() {
                "gauge" => Data::Gauge(Gauge {
                    data_points: vec![],
                }),
                "sum" => Data::Sum(Sum {
                    data_points: vec![],
                    aggregation_temporality: t,
                    is_monotonic: monotonic.unwrap_or_default(),
                }),
                "histogram" => Data::Histogram(Histogram {
                    data_points: vec![],
                    aggregation_temporality: t,
                }),
                "exponential_histogram" => Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![],
                    aggregation_temporality: t,
                }),
                _ => Data::Summary(Summary {
                    data_points: vec![],
                }),
            });
            match data {
                Data::Gauge(g) => g.data_points.push(self.number(row)?),
                Data::Sum(s) => s.data_points.push(self.number(row)?),
                Data::Histogram(h) => h.data_points.push(self.histogram(row)?),
                Data::ExponentialHistogram(h) => h.data_points.push(self.exponential(row)?),
                Data::Summary(s) => s.data_points.push(self.summary(row)?),
            }
        }
        Ok(out.into_iter().map(|(m, ..)| m).collect())
    }
}

/// Rebuilds the metrics export request a `metrics` batch was made from.
pub fn metrics_from_arrow(
    batch: &RecordBatch,
) -> Result<ExportMetricsServiceRequest, ConvertError> {
    let reader = MetricsReader::new(batch)?;
    let resource_metrics = regroup(batch, |range| reader.metrics(range))?
        .into_iter()
        .map(|group| ResourceMetrics {
            resource: Some(group.resource),
            scope_metrics: group
                .scopes
                .into_iter()
                .map(|(scope, schema_url, metrics)| ScopeMetrics {
                    scope: Some(scope),
                    metrics,
                    schema_url,
                })
                .collect(),
            schema_url: group.schema_url,
        })
        .collect();
    Ok(ExportMetricsServiceRequest { resource_metrics })
}
