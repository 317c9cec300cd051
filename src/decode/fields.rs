//! Field numbers of the OTLP trace protos (opentelemetry-proto v1), named once so the decoder reads like the
//! `.proto` files.

pub mod request {
    pub const RESOURCE_SPANS: u32 = 1;
}
pub mod resource_spans {
    pub const RESOURCE: u32 = 1;
    pub const SCOPE_SPANS: u32 = 2;
    pub const SCHEMA_URL: u32 = 3;
}
pub mod resource {
    pub const ATTRIBUTES: u32 = 1;
    pub const DROPPED_ATTRIBUTES_COUNT: u32 = 2;
}
pub mod scope_spans {
    pub const SCOPE: u32 = 1;
    pub const SPANS: u32 = 2;
    pub const SCHEMA_URL: u32 = 3;
}
pub mod scope {
    pub const NAME: u32 = 1;
    pub const VERSION: u32 = 2;
    pub const ATTRIBUTES: u32 = 3;
    pub const DROPPED_ATTRIBUTES_COUNT: u32 = 4;
}
pub mod span {
    pub const TRACE_ID: u32 = 1;
    pub const SPAN_ID: u32 = 2;
    pub const TRACE_STATE: u32 = 3;
    pub const PARENT_SPAN_ID: u32 = 4;
    pub const NAME: u32 = 5;
    pub const KIND: u32 = 6;
    pub const START_TIME_UNIX_NANO: u32 = 7;
    pub const END_TIME_UNIX_NANO: u32 = 8;
    pub const ATTRIBUTES: u32 = 9;
    pub const DROPPED_ATTRIBUTES_COUNT: u32 = 10;
    pub const EVENTS: u32 = 11;
    pub const DROPPED_EVENTS_COUNT: u32 = 12;
    pub const LINKS: u32 = 13;
    pub const DROPPED_LINKS_COUNT: u32 = 14;
    pub const STATUS: u32 = 15;
    pub const FLAGS: u32 = 16;
}
pub mod event {
    pub const TIME_UNIX_NANO: u32 = 1;
    pub const NAME: u32 = 2;
    pub const ATTRIBUTES: u32 = 3;
    pub const DROPPED_ATTRIBUTES_COUNT: u32 = 4;
}
pub mod link {
    pub const TRACE_ID: u32 = 1;
    pub const SPAN_ID: u32 = 2;
    pub const TRACE_STATE: u32 = 3;
    pub const ATTRIBUTES: u32 = 4;
    pub const DROPPED_ATTRIBUTES_COUNT: u32 = 5;
    pub const FLAGS: u32 = 6;
}
pub mod status {
    pub const MESSAGE: u32 = 2;
    pub const CODE: u32 = 3;
}
pub mod key_value {
    pub const KEY: u32 = 1;
    pub const VALUE: u32 = 2;
}
pub mod any_value {
    pub const STRING: u32 = 1;
    pub const BOOL: u32 = 2;
    pub const INT: u32 = 3;
    pub const DOUBLE: u32 = 4;
    pub const ARRAY: u32 = 5;
    pub const KVLIST: u32 = 6;
    pub const BYTES: u32 = 7;
}
/// `ArrayValue.values` and `KeyValueList.values` are both field 1.
pub const LIST_VALUES: u32 = 1;
