//! v2's four leading columns (`record_id`, `time`, `date`, `service_name`), which every v2 table puts before the
//! v1 columns: built the same way for each signal, from the row's time and its resource's `service.name`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::error::ArrowError;

use super::columns::FinishSized;
use super::record_id::RecordIds;
use super::repeated::{RepeatedStrings, View};
use crate::decode::{AnyValue, Attributes, DecodeError};

/// v2's leading columns.
pub(super) struct Leading {
    record_id: StringBuilder,
    ids: RecordIds,
    time: TimestampMicrosecondBuilder,
    date: Date32Builder,
    service_name: RepeatedStrings,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Leading {
    pub(super) fn new() -> Self {
        Leading {
            record_id: StringBuilder::new(),
            ids: RecordIds::new(),
            time: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            date: Date32Builder::new(),
            service_name: RepeatedStrings::new(),
        }
    }

    /// A row at `time_unix_nano` (stored in microseconds) of the resource whose `service.name` is stored as
    /// `service_name`. Inlined as it was when it lived in the spans builder (the icount profile splits codegen
    /// units by module).
    #[inline]
    pub(super) fn append(&mut self, time_unix_nano: u64, service_name: Option<View>) {
        let micros = (time_unix_nano / 1_000) as i64;
        self.record_id.append_value(self.ids.next(micros));
        self.time.append_value(micros);
        self.date.append_value(micros.div_euclid(MICROS_PER_DAY) as i32);
        self.service_name.push(service_name);
    }

    /// Store a resource's `service.name` (see [`service_name`]) once for its rows.
    pub(super) fn store_service_name(&mut self, attributes: Attributes<'_>) -> Result<Option<View>, DecodeError> {
        Ok(service_name(attributes)?.map(|s| self.service_name.store(s)))
    }

    /// `record_id`, `time`, `date`, `service_name`.
    pub(super) fn finish(&mut self) -> Result<[ArrayRef; 4], ArrowError> {
        let time = self.time.finish();
        self.time = TimestampMicrosecondBuilder::with_capacity(time.len()).with_timezone("UTC");
        Ok([self.record_id.finish_sized(), Arc::new(time), self.date.finish_sized(), self.service_name.finish()?])
    }
}

/// The resource's `service.name`, when it is a string (the last one, if repeated).
fn service_name<'a>(attributes: Attributes<'a>) -> Result<Option<&'a str>, DecodeError> {
    let mut found = None;
    for kv in attributes {
        let kv = kv?;
        if kv.key == "service.name" {
            found = match kv.value {
                AnyValue::String(s) => Some(s),
                _ => None,
            };
        }
    }
    Ok(found)
}
