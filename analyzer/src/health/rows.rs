//! Health transitions as rows of the `health` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::error::ArrowError;

use super::Transition;

/// The `health` rows for `transitions`.
pub fn batch(transitions: &[Transition]) -> Result<RecordBatch, ArrowError> {
    let mut time = TimestampNanosecondBuilder::new().with_timezone("UTC");
    let (mut endpoint, mut region, mut service, mut reason) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut healthy, mut previous) = (BooleanBuilder::new(), BooleanBuilder::new());
    let (mut up, mut all) = (Int32Builder::new(), Int32Builder::new());
    for t in transitions {
        time.append_value(t.time_ns);
        endpoint.append_value(&t.endpoint);
        region.append_value(&t.region);
        service.append_option(t.service.as_deref());
        healthy.append_value(t.healthy);
        previous.append_value(!t.healthy);
        up.append_value(t.healthy_vantages as i32);
        all.append_value(t.vantages as i32);
        reason.append_value(&t.reason);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(endpoint.finish()),
        Arc::new(region.finish()),
        Arc::new(service.finish()),
        Arc::new(healthy.finish()),
        Arc::new(previous.finish()),
        Arc::new(up.finish()),
        Arc::new(all.finish()),
        Arc::new(reason.finish()),
    ];
    RecordBatch::try_new(crate::schema::health(), columns)
}
