//! Field numbers of the OTLP trace and logs protos (opentelemetry-proto v1), named once so the decoder reads like
//! the `.proto` files. `Resource`, `InstrumentationScope`, `KeyValue` and `AnyValue` are shared by both signals.

pub(crate) mod request {
    pub(crate) const RESOURCE_SPANS: u32 = 1;
}
pub(crate) mod resource_spans {
    pub(crate) const RESOURCE: u32 = 1;
    pub(crate) const SCOPE_SPANS: u32 = 2;
    pub(crate) const SCHEMA_URL: u32 = 3;
}
pub(crate) mod resource {
    pub(crate) const ATTRIBUTES: u32 = 1;
    pub(crate) const DROPPED_ATTRIBUTES_COUNT: u32 = 2;
}
pub(crate) mod scope_spans {
    pub(crate) const SCOPE: u32 = 1;
    pub(crate) const SPANS: u32 = 2;
    pub(crate) const SCHEMA_URL: u32 = 3;
}
pub(crate) mod scope {
    pub(crate) const NAME: u32 = 1;
    pub(crate) const VERSION: u32 = 2;
    pub(crate) const ATTRIBUTES: u32 = 3;
    pub(crate) const DROPPED_ATTRIBUTES_COUNT: u32 = 4;
}
pub(crate) mod span {
    pub(crate) const TRACE_ID: u32 = 1;
    pub(crate) const SPAN_ID: u32 = 2;
    pub(crate) const TRACE_STATE: u32 = 3;
    pub(crate) const PARENT_SPAN_ID: u32 = 4;
    pub(crate) const NAME: u32 = 5;
    pub(crate) const KIND: u32 = 6;
    pub(crate) const START_TIME_UNIX_NANO: u32 = 7;
    pub(crate) const END_TIME_UNIX_NANO: u32 = 8;
    pub(crate) const ATTRIBUTES: u32 = 9;
    pub(crate) const DROPPED_ATTRIBUTES_COUNT: u32 = 10;
    pub(crate) const EVENTS: u32 = 11;
    pub(crate) const DROPPED_EVENTS_COUNT: u32 = 12;
    pub(crate) const LINKS: u32 = 13;
    pub(crate) const DROPPED_LINKS_COUNT: u32 = 14;
    pub(crate) const STATUS: u32 = 15;
    pub(crate) const FLAGS: u32 = 16;
}
pub(crate) mod event {
    pub(crate) const TIME_UNIX_NANO: u32 = 1;
    pub(crate) const NAME: u32 = 2;
    pub(crate) const ATTRIBUTES: u32 = 3;
    pub(crate) const DROPPED_ATTRIBUTES_COUNT: u32 = 4;
}
pub(crate) mod link {
    pub(crate) const TRACE_ID: u32 = 1;
    pub(crate) const SPAN_ID: u32 = 2;
    pub(crate) const TRACE_STATE: u32 = 3;
    pub(crate) const ATTRIBUTES: u32 = 4;
    pub(crate) const DROPPED_ATTRIBUTES_COUNT: u32 = 5;
    pub(crate) const FLAGS: u32 = 6;
}
pub(crate) mod status {
    pub(crate) const MESSAGE: u32 = 2;
    pub(crate) const CODE: u32 = 3;
}
pub(crate) mod logs_request {
    pub(crate) const RESOURCE_LOGS: u32 = 1;
}
pub(crate) mod resource_logs {
    pub(crate) const RESOURCE: u32 = 1;
    pub(crate) const SCOPE_LOGS: u32 = 2;
    pub(crate) const SCHEMA_URL: u32 = 3;
}
pub(crate) mod scope_logs {
    pub(crate) const SCOPE: u32 = 1;
    pub(crate) const LOG_RECORDS: u32 = 2;
    pub(crate) const SCHEMA_URL: u32 = 3;
}
pub(crate) mod log_record {
    pub(crate) const TIME_UNIX_NANO: u32 = 1;
    pub(crate) const SEVERITY_NUMBER: u32 = 2;
    pub(crate) const SEVERITY_TEXT: u32 = 3;
    pub(crate) const BODY: u32 = 5;
    pub(crate) const ATTRIBUTES: u32 = 6;
    pub(crate) const DROPPED_ATTRIBUTES_COUNT: u32 = 7;
    pub(crate) const FLAGS: u32 = 8;
    pub(crate) const TRACE_ID: u32 = 9;
    pub(crate) const SPAN_ID: u32 = 10;
    pub(crate) const OBSERVED_TIME_UNIX_NANO: u32 = 11;
    pub(crate) const EVENT_NAME: u32 = 12;
}
pub(crate) mod key_value {
    pub(crate) const KEY: u32 = 1;
    pub(crate) const VALUE: u32 = 2;
}
pub(crate) mod any_value {
    pub(crate) const STRING: u32 = 1;
    pub(crate) const BOOL: u32 = 2;
    pub(crate) const INT: u32 = 3;
    pub(crate) const DOUBLE: u32 = 4;
    pub(crate) const ARRAY: u32 = 5;
    pub(crate) const KVLIST: u32 = 6;
    pub(crate) const BYTES: u32 = 7;
}
/// `ArrayValue.values` and `KeyValueList.values` are both field 1.
pub(crate) const LIST_VALUES: u32 = 1;
