//! A `metrics` batch → `ExportMetricsServiceRequest`.

use arrow::array::{
    Array, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, MapArray, RecordBatch,
    StringArray, StructArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};

use super::{column, downcast, enum_value, read, read_hex, regroup};
use crate::convert::metrics::TEMPORALITY;
use crate::convert::ConvertError;

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
            metadata: read(self.meta, self.meta_types, row)?,
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
                    filtered_attributes: read(&attrs, &types, i)?,
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
            attributes: read(self.attrs, self.attr_types, row)?,
            start_time_unix_nano: self.start.value(row) as u64,
            time_unix_nano: self.time.value(row) as u64,
            exemplars: self.exemplars(row)?,
            flags: self.flags.value(row),
            value,
        })
    }

    fn histogram(&self, row: usize) -> Result<HistogramDataPoint, ConvertError> {
        Ok(HistogramDataPoint {
            attributes: read(self.attrs, self.attr_types, row)?,
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
            attributes: read(self.attrs, self.attr_types, row)?,
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
            attributes: read(self.attrs, self.attr_types, row)?,
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
