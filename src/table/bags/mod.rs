//! Attribute bags: the one kind of value the layouts store differently. v1 stores a bag as
//! `MAP<STRING,STRING>` with every non-string value rendered as JSON text ([`map`]); v2 as a VARIANT object that
//! keeps each value's type ([`variant`]). Row builders are generic over these two traits, so a signal's columns are
//! written once for both layouts. A single value stored on its own (a log record's body) follows the same rules
//! ([`ValueColumn`]): v1 text as a map value is rendered, v2 a VARIANT of the value itself; an unset value is NULL.
//!
//! Contract of both: a failed `append` or `store` leaves the column consistent up to its last complete row (the
//! row builder cuts every column at its row count after a failed request), and `finish` returns exactly the rows
//! appended since the last `finish`, as the Arrow type the table's schema gives for the column.

pub(crate) mod map;
pub(crate) mod variant;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

use crate::decode::{AnyValue, Attributes, DecodeError};

/// A column of attribute bags, one per row (a span's, an event's, a link's attributes).
pub(crate) trait BagColumn: Send + Sized {
    fn new() -> Self;
    /// One row holding `attributes`.
    fn append(&mut self, attributes: Attributes<'_>) -> Result<(), DecodeError>;
    /// The rows so far as `data_type`; the column starts empty.
    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError>;
}

/// A column of bags repeated over many rows (resource and scope attributes): each bag is stored once per request
/// and every row that holds it refers to it, so memory does not grow with the rows under a resource.
pub(crate) trait RepeatedBagColumn: Send + Sized {
    /// A stored bag; valid until the next `finish`.
    type Stored;
    fn new() -> Self;
    /// Store a bag; returns it and the bytes each row that holds it adds to the Parquet file, which repeats the
    /// bag on every row (what the in-flight budget counts).
    fn store(&mut self, attributes: Attributes<'_>) -> Result<(Self::Stored, u64), DecodeError>;
    /// One row holding a stored bag.
    fn push(&mut self, bag: &Self::Stored);
    /// The rows so far as `data_type`; the column starts empty.
    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError>;
}

/// A column of single values, one per row (a log record's body); an unset value ([`AnyValue::Empty`]) is NULL.
pub(crate) trait ValueColumn: Send + Sized {
    fn new() -> Self;
    /// One row holding `value`.
    fn append(&mut self, value: &AnyValue<'_>) -> Result<(), DecodeError>;
    /// The rows so far as `data_type`; the column starts empty.
    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError>;
}
