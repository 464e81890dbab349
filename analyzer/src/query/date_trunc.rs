//! `date_trunc` that truncates UTC timestamps to the hour or day by arithmetic; every other
//! call is DataFusion's own function. Why: every stored timestamp is `Timestamp(ns, "UTC")`,
//! and DataFusion takes its per-value calendar path for any named zone, UTC included (~200 ns
//! a value: "per hour" over 10M spans spent two seconds of CPU there).

use std::sync::Arc;

use arrow::array::{Array, AsArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, FieldRef, TimeUnit, TimestampNanosecondType};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions::datetime::date_trunc::DateTruncFunc;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use crate::store::HOUR_NS;

/// Nanoseconds in a day.
const DAY_NS: i64 = 24 * HOUR_NS;

/// `date_trunc` with the UTC hour and day done by arithmetic (same results, same types).
///
/// ```
/// # use datafusion::prelude::SessionContext;
/// # use datafusion::logical_expr::ScalarUDF;
/// # use meridian_analyzer::query::date_trunc::UtcDateTrunc;
/// # tokio_test_block_on(async {
/// let ctx = SessionContext::new();
/// ctx.register_udf(ScalarUDF::new_from_impl(UtcDateTrunc::default()));
/// let sql = "SELECT CAST(date_trunc('hour', t) AS VARCHAR) AS h FROM (VALUES \
///     (arrow_cast('2025-11-01T03:47:12Z', 'Timestamp(Nanosecond, Some(\"UTC\"))'))) AS v(t)";
/// let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
/// let shown = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
/// assert!(shown.contains("2025-11-01T03:00:00Z"), "{shown}");
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct UtcDateTrunc {
    inner: DateTruncFunc,
}

impl UtcDateTrunc {
    /// The unit's width when `args` are a UTC nanosecond array and `hour` or `day`.
    fn arithmetic(args: &[ColumnarValue]) -> Option<(i64, &TimestampNanosecondArray)> {
        let [ColumnarValue::Scalar(unit), ColumnarValue::Array(array)] = args else {
            return None;
        };
        let unit = match unit {
            ScalarValue::Utf8(Some(u)) | ScalarValue::Utf8View(Some(u)) => u,
            ScalarValue::LargeUtf8(Some(u)) => u,
            _ => return None,
        };
        let width = match unit.to_ascii_lowercase().as_str() {
            "hour" => HOUR_NS,
            "day" => DAY_NS,
            _ => return None,
        };
        match array.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, Some(tz))
                if matches!(tz.as_ref(), "UTC" | "+00:00" | "Z") =>
            {
                Some((width, array.as_primitive::<TimestampNanosecondType>()))
            }
            _ => None,
        }
    }
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((width, array)) = Self::arithmetic(&args.args) else {
            return self.inner.invoke_with_args(args);
        };
        let truncated: TimestampNanosecondArray = array.unary(|t| t - t.rem_euclid(width));
        let truncated = truncated.with_timezone_opt(array.timezone().map(Arc::<str>::from));
        Ok(ColumnarValue::Array(Arc::new(truncated)))
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(input)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::RecordBatch;
    use datafusion::logical_expr::ScalarUDF;
    use datafusion::prelude::SessionContext;

    /// Every unit and zone through both functions, over times around the epoch, day and hour
    /// boundaries and negative values: the same values and types.
    #[tokio::test]
    async fn same_results_as_datafusion() {
        let times: Vec<i64> = [-DAY_NS - 1, -1, 0, 1, HOUR_NS - 1, HOUR_NS, DAY_NS + 7]
            .into_iter()
            .chain((0..50).map(|i| 1_761_966_432_123_456_789 + i * 987_654_321_012))
            .collect();
        let array = TimestampNanosecondArray::from(times);
        let utc = array.clone().with_timezone("UTC");
        let other = array.clone().with_timezone("+02:00");
        let batch = RecordBatch::try_from_iter([
            ("utc", Arc::new(utc) as _),
            ("other", Arc::new(other) as _),
            ("bare", Arc::new(array) as _),
        ])
        .unwrap();
        let plain = SessionContext::new();
        let ours = SessionContext::new();
        ours.register_udf(ScalarUDF::new_from_impl(UtcDateTrunc::default()));
        for ctx in [&plain, &ours] {
            ctx.register_batch("t", batch.clone()).unwrap();
        }
        for unit in ["hour", "day", "HOUR", "minute", "month"] {
            for column in ["utc", "other", "bare"] {
                let sql = format!("SELECT date_trunc('{unit}', {column}) AS d FROM t");
                let a = plain.sql(&sql).await.unwrap().collect().await.unwrap();
                let b = ours.sql(&sql).await.unwrap().collect().await.unwrap();
                assert_eq!(a, b, "{sql}");
            }
        }
    }
}
