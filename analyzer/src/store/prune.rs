//! The time range a query's filters allow, used to skip hour partitions that cannot match.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

/// An inclusive range of nanosecond timestamps; `None` ends are open.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TimeRange {
    /// Earliest time a row may have.
    pub from: Option<i64>,
    /// Latest time a row may have.
    pub to: Option<i64>,
}

impl TimeRange {
    /// Whether any time in `[start, end)` lies in the range.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.from.is_none_or(|f| f < end) && self.to.is_none_or(|t| t >= start)
    }

    fn narrow_from(&mut self, v: i64) {
        self.from = Some(self.from.map_or(v, |f| f.max(v)));
    }

    fn narrow_to(&mut self, v: i64) {
        self.to = Some(self.to.map_or(v, |t| t.min(v)));
    }
}

fn timestamp(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(ScalarValue::TimestampNanosecond(Some(v), _), _) => Some(*v),
        Expr::Literal(ScalarValue::TimestampMicrosecond(Some(v), _), _) => v.checked_mul(1_000),
        Expr::Literal(ScalarValue::TimestampMillisecond(Some(v), _), _) => v.checked_mul(1_000_000),
        Expr::Literal(ScalarValue::TimestampSecond(Some(v), _), _) => v.checked_mul(1_000_000_000),
        Expr::Cast(c) => timestamp(&c.expr),
        Expr::TryCast(c) => timestamp(&c.expr),
        _ => None,
    }
}

fn is_column(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Column(c) if c.name == name)
}

/// Narrows the range by the conjunctive filters DataFusion pushed into the scan.
pub fn time_range(filters: &[Expr], column: &str) -> TimeRange {
    let mut range = TimeRange::default();
    for f in filters {
        match f {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) = if is_column(left, column) {
                    (*op, timestamp(right))
                } else if is_column(right, column) {
                    (op.swap().unwrap_or(*op), timestamp(left))
                } else {
                    continue;
                };
                let Some(v) = value else { continue };
                match op {
                    Operator::Gt | Operator::GtEq => range.narrow_from(v),
                    Operator::Lt | Operator::LtEq => range.narrow_to(v),
                    Operator::Eq => {
                        range.narrow_from(v);
                        range.narrow_to(v);
                    }
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_column(expr, column) => {
                if let Some(v) = timestamp(low) {
                    range.narrow_from(v);
                }
                if let Some(v) = timestamp(high) {
                    range.narrow_to(v);
                }
            }
            _ => {}
        }
    }
    range
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn comparisons_and_between_narrow_the_range() {
        let r = time_range(&[col("time").gt_eq(ts(10)), ts(50).gt(col("time"))], "time");
        assert_eq!(
            r,
            TimeRange {
                from: Some(10),
                to: Some(50)
            }
        );
        let r = time_range(
            &[col("time").between(ts(5), ts(7)), col("other").gt(ts(100))],
            "time",
        );
        assert_eq!(
            r,
            TimeRange {
                from: Some(5),
                to: Some(7)
            }
        );
        assert!(r.overlaps(0, 6) && !r.overlaps(8, 20));
    }
}
