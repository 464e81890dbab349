//! What every nested `List<Struct>` column with attributes shares — span events and links,
//! metric exemplars: the list offsets and the pair of attribute maps.

use std::sync::Arc;

use arrow::array::{ArrayRef, ListArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::attributes::{self, StringMapBuilder};
use super::ConvertError;

/// Offsets and attribute maps of a `List<Struct>` column being built.
pub struct NestedRows {
    offsets: Vec<i32>,
    values: StringMapBuilder,
    types: StringMapBuilder,
}

impl Default for NestedRows {
    fn default() -> Self {
        Self {
            offsets: vec![0],
            values: attributes::map_builder(),
            types: attributes::map_builder(),
        }
    }
}

impl NestedRows {
    /// Appends the attributes of one item.
    pub fn attributes(&mut self, attrs: &[KeyValue]) {
        attributes::append(&mut self.values, &mut self.types, attrs);
    }

    /// Closes the current row, which holds `items` items.
    pub fn end_row(&mut self, items: usize) {
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(last + items as i32);
    }

    /// Assembles the column from the struct's children: `before` the attribute maps and `after`.
    pub fn finish(
        mut self,
        fields: Fields,
        mut before: Vec<ArrayRef>,
        after: Vec<ArrayRef>,
    ) -> Result<ArrayRef, ConvertError> {
        before.push(Arc::new(self.values.finish()));
        before.push(Arc::new(self.types.finish()));
        before.extend(after);
        list_of_structs(fields, before, self.offsets)
    }
}

/// Assembles a non-null `List<Struct>` column from struct children and list offsets.
pub fn list_of_structs(
    fields: Fields,
    children: Vec<ArrayRef>,
    mut offsets: Vec<i32>,
) -> Result<ArrayRef, ConvertError> {
    if offsets.is_empty() {
        offsets.push(0);
    }
    let structs = StructArray::try_new(fields.clone(), children, None)?;
    let item = Arc::new(Field::new("item", DataType::Struct(fields), true));
    let list = ListArray::try_new(
        item,
        OffsetBuffer::new(offsets.into()),
        Arc::new(structs),
        None,
    )?;
    Ok(Arc::new(list))
}
