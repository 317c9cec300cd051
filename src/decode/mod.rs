//! decode: OTLP export requests (`ExportTraceServiceRequest`, `ExportLogsServiceRequest`) as protobuf bytes →
//! read-only views borrowed from the request body. Traces here; logs in [`logs`], sharing the resource, scope,
//! attribute and `AnyValue` views.
//!
//! Contract (both signals):
//! - Zero-copy: every string and id is a slice of the body; no owned message structs are built.
//! - Bounded: each nested message is read by its own reader over exactly its bytes (see [`wire`]); `AnyValue`
//!   nesting deeper than [`MAX_VALUE_DEPTH`] is refused, so the stack stays bounded on hostile input.
//! - Total: [`validate`] (and [`logs::validate_logs`]) walks the whole request once; when it returns `Ok`, every
//!   view and iterator reached from [`Request`] (or [`logs::LogsRequest`]) on the same bytes succeeds, because it
//!   runs the same code. The row builders (`table::spans`, `table::logs`) walk the views themselves in the same
//!   order, so they refuse exactly what validation refuses, and drop the rows of a request they refuse half-way.
//! - Proto3 semantics: unknown fields (and groups) are skipped, the last value of a scalar field wins, missing
//!   fields read as their defaults.

pub(crate) mod fields;
pub(crate) mod json;
pub(crate) mod logs;
pub(crate) mod wire;

use bytes::Bytes;

pub use logs::validate_logs;
pub(crate) use logs::LogRecordView;
use wire::Reader;

/// An OpenTelemetry signal: which OTLP export request a body holds, and so which table its rows go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `ExportTraceServiceRequest`: one row per span.
    Traces,
    /// `ExportLogsServiceRequest`: one row per log record.
    Logs,
}

impl Signal {
    /// Every signal, in the order of [`Signal::index`].
    pub const ALL: [Signal; 2] = [Signal::Traces, Signal::Logs];

    /// Its position in [`Signal::ALL`], for per-signal tables of handles.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Its name on the command line and in metrics: `traces`, `logs`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }

    /// What one row of its table holds, in the plural: `spans`, `log records`.
    pub(crate) fn rows(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Logs => "log records",
        }
    }

    /// One or more of its records, for messages: `span(s)`, `log record(s)`.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Signal::Traces => "span(s)",
            Signal::Logs => "log record(s)",
        }
    }
}

/// Why a request body is not a valid export request of its signal. Small and `Copy`: built on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("protobuf truncated: a length or value runs past the end of its message")]
    Truncated,
    #[error("protobuf varint longer than 10 bytes")]
    VarintOverflow,
    #[error("protobuf field number 0 or out of range")]
    BadFieldNumber,
    #[error("protobuf field {field} has unknown wire type {wire}")]
    BadWireType { field: u32, wire: u8 },
    #[error("protobuf field {field} has the wrong wire type for its declared type")]
    WrongWireType { field: u32 },
    #[error("protobuf string field {field} is not valid UTF-8")]
    InvalidUtf8 { field: u32 },
    #[error("AnyValue or group nesting deeper than {MAX_VALUE_DEPTH} levels")]
    TooDeep,
    #[error("OTLP/JSON: {path} {what}")]
    Json { path: &'static str, what: &'static str },
    #[error(
        "the request's rows would take more than {limit} bytes (resource and scope values are repeated on every \
         row): send fewer spans or log records per request"
    )]
    RowsTooLarge { limit: u64 },
    #[error("an attribute value cannot be encoded as VARIANT (past the format's 4 GiB offsets)")]
    Variant,
}

/// The encoding of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

/// The export request of `signal` as protobuf bytes: as is, or transcoded from OTLP/JSON (see [`json`]).
pub fn to_protobuf(signal: Signal, format: Format, body: Bytes) -> Result<Bytes, DecodeError> {
    match format {
        Format::Protobuf => Ok(body),
        Format::Json => {
            // simd-json parses in place: this is the body's own buffer when nothing else holds it.
            let mut buf = Vec::from(body);
            json::to_protobuf(signal, &mut buf).map(Bytes::from)
        }
    }
}

/// Deepest `AnyValue` nesting accepted (arrays and kvlists inside attribute values).
pub(crate) const MAX_VALUE_DEPTH: u32 = 64;

/// What [`validate`] (or [`validate_logs`]) found in a request: counts of its records (spans, log records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records that will become rows.
    pub accepted: u64,
    /// Records refused alone (see [`SpanView::rejection`], [`LogRecordView::rejection`]); the rest of the request
    /// is still stored.
    pub rejected: u64,
    /// The first rejection reason, for the partial-success message.
    pub first_rejection: Option<&'static str>,
}

/// Walk the whole `ExportTraceServiceRequest`, checking every field the row builder will read.
pub fn validate(body: &[u8]) -> Result<Summary, DecodeError> {
    let mut summary = Summary::default();
    for rs in Request::new(body).resource_spans() {
        let rs = rs?;
        check_attributes(rs.resource.attributes)?;
        for ss in rs.scope_spans() {
            let ss = ss?;
            check_attributes(ss.scope.attributes)?;
            for span in ss.spans() {
                let span = span?;
                if let Some(reason) = span.rejection() {
                    summary.rejected += 1;
                    summary.first_rejection.get_or_insert(reason);
                    continue;
                }
                summary.accepted += 1;
                check_attributes(span.attributes())?;
                for event in span.events() {
                    check_attributes(event?.attributes)?;
                }
                for link in span.links() {
                    check_attributes(link?.attributes)?;
                }
            }
        }
    }
    Ok(summary)
}

fn check_attributes(attributes: Attributes<'_>) -> Result<(), DecodeError> {
    for kv in attributes {
        check_value(kv?.value, 1)?;
    }
    Ok(())
}

fn check_value(value: AnyValue<'_>, depth: u32) -> Result<(), DecodeError> {
    match value {
        AnyValue::Array(values) => {
            for v in values.iter(depth)? {
                check_value(v?, depth + 1)?;
            }
        }
        AnyValue::KvList(list) => {
            for kv in list.iter(depth)? {
                check_value(kv?.value, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Where the occurrences of one repeated field lie in a message: from the first one's tag to the last one's end.
/// Iterating a repeated field then reads only that extent, not the whole parent again (fields of one number are
/// written together by every encoder in practice; interleaved ones are still found, just skipped over).
#[derive(Debug, Clone, Copy, Default)]
struct Extent(Option<(usize, usize)>);

impl Extent {
    fn cover(&mut self, at: std::ops::Range<usize>) {
        self.0 = Some(self.0.map_or((at.start, at.end), |(first, _)| (first, at.end)));
    }

    fn of(self, buf: &[u8]) -> &[u8] {
        self.0.and_then(|(start, end)| buf.get(start..end)).unwrap_or(&[])
    }
}

/// A message type that can be read from its bytes.
trait Message<'a>: Sized {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError>;
}

/// The values of one repeated message field, parsed lazily from the parent's bytes.
pub(crate) struct Repeated<'a, T> {
    reader: Reader<'a>,
    field: u32,
    done: bool,
    _item: std::marker::PhantomData<T>,
}

impl<'a, T> Repeated<'a, T> {
    fn new(parent: &'a [u8], field: u32) -> Self {
        Repeated { reader: Reader::new(parent), field, done: false, _item: std::marker::PhantomData }
    }
}

impl<'a, T: Message<'a>> Iterator for Repeated<'a, T> {
    type Item = Result<T, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let item = match self.reader.next_field() {
                Ok(None) => None,
                Ok(Some((f, v))) if f == self.field => Some(v.bytes(f).and_then(T::parse)),
                Ok(Some(_)) => continue,
                Err(e) => Some(Err(e)),
            };
            // After the end or an error the iterator is fused.
            self.done = !matches!(item, Some(Ok(_)));
            return item;
        }
        None
    }
}

/// An `ExportTraceServiceRequest`.
pub(crate) struct Request<'a> {
    buf: &'a [u8],
}

impl<'a> Request<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Request { buf }
    }

    pub(crate) fn resource_spans(&self) -> Repeated<'a, ResourceSpansView<'a>> {
        Repeated::new(self.buf, fields::request::RESOURCE_SPANS)
    }
}

/// `ResourceSpans`: a resource, its schema URL, and its scopes.
pub(crate) struct ResourceSpansView<'a> {
    buf: &'a [u8],
    pub(crate) resource: ResourceView<'a>,
    pub(crate) schema_url: &'a str,
}

impl<'a> Message<'a> for ResourceSpansView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::resource_spans as f;
        let mut view = ResourceSpansView { buf: &[], resource: ResourceView::default(), schema_url: "" };
        let mut scope_spans = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::RESOURCE => view.resource = ResourceView::parse(value.bytes(field)?)?,
                f::SCOPE_SPANS => {
                    value.bytes(field)?;
                    scope_spans.cover(at);
                }
                f::SCHEMA_URL => view.schema_url = value.string(field)?,
                _ => {}
            }
        }
        view.buf = scope_spans.of(buf);
        Ok(view)
    }
}

impl<'a> ResourceSpansView<'a> {
    pub(crate) fn scope_spans(&self) -> Repeated<'a, ScopeSpansView<'a>> {
        Repeated::new(self.buf, fields::resource_spans::SCOPE_SPANS)
    }
}

/// `Resource`.
#[derive(Default, Clone, Copy)]
pub(crate) struct ResourceView<'a> {
    pub(crate) attributes: Attributes<'a>,
    pub(crate) dropped_attributes_count: u32,
}

impl<'a> Message<'a> for ResourceView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::resource as f;
        let mut view = ResourceView::default();
        let mut attributes = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::ATTRIBUTES => {
                    value.bytes(field)?;
                    attributes.cover(at);
                }
                f::DROPPED_ATTRIBUTES_COUNT => view.dropped_attributes_count = value.varint32(field)?,
                _ => {}
            }
        }
        view.attributes = Attributes::new(attributes.of(buf), f::ATTRIBUTES);
        Ok(view)
    }
}

/// `ScopeSpans`: an instrumentation scope, its schema URL, and its spans.
pub(crate) struct ScopeSpansView<'a> {
    buf: &'a [u8],
    pub(crate) scope: ScopeView<'a>,
    pub(crate) schema_url: &'a str,
}

impl<'a> Message<'a> for ScopeSpansView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::scope_spans as f;
        let mut view = ScopeSpansView { buf: &[], scope: ScopeView::default(), schema_url: "" };
        let mut spans = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::SCOPE => view.scope = ScopeView::parse(value.bytes(field)?)?,
                f::SPANS => {
                    value.bytes(field)?;
                    spans.cover(at);
                }
                f::SCHEMA_URL => view.schema_url = value.string(field)?,
                _ => {}
            }
        }
        view.buf = spans.of(buf);
        Ok(view)
    }
}

impl<'a> ScopeSpansView<'a> {
    pub(crate) fn spans(&self) -> Repeated<'a, SpanView<'a>> {
        Repeated::new(self.buf, fields::scope_spans::SPANS)
    }
}

/// `InstrumentationScope`.
#[derive(Default, Clone, Copy)]
pub(crate) struct ScopeView<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) attributes: Attributes<'a>,
    pub(crate) dropped_attributes_count: u32,
}

impl<'a> Message<'a> for ScopeView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::scope as f;
        let mut view = ScopeView::default();
        let mut attributes = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::NAME => view.name = value.string(field)?,
                f::VERSION => view.version = value.string(field)?,
                f::ATTRIBUTES => {
                    value.bytes(field)?;
                    attributes.cover(at);
                }
                f::DROPPED_ATTRIBUTES_COUNT => view.dropped_attributes_count = value.varint32(field)?,
                _ => {}
            }
        }
        view.attributes = Attributes::new(attributes.of(buf), f::ATTRIBUTES);
        Ok(view)
    }
}

/// `Span`: scalar fields read eagerly, repeated fields (attributes, events, links) lazily.
#[derive(Default, Clone, Copy)]
pub(crate) struct SpanView<'a> {
    attributes_buf: &'a [u8],
    events_buf: &'a [u8],
    links_buf: &'a [u8],
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) trace_state: &'a str,
    pub(crate) parent_span_id: &'a [u8],
    pub(crate) flags: u32,
    pub(crate) name: &'a str,
    pub(crate) kind: i32,
    pub(crate) start_time_unix_nano: u64,
    pub(crate) end_time_unix_nano: u64,
    pub(crate) dropped_attributes_count: u32,
    pub(crate) dropped_events_count: u32,
    pub(crate) dropped_links_count: u32,
    pub(crate) status: StatusView<'a>,
    /// Bytes of the encoded span.
    pub(crate) encoded_len: usize,
}

impl<'a> Message<'a> for SpanView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::span as f;
        let mut view = SpanView { encoded_len: buf.len(), ..SpanView::default() };
        let (mut attributes, mut events, mut links) = (Extent::default(), Extent::default(), Extent::default());
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::TRACE_ID => view.trace_id = value.bytes(field)?,
                f::SPAN_ID => view.span_id = value.bytes(field)?,
                f::TRACE_STATE => view.trace_state = value.string(field)?,
                f::PARENT_SPAN_ID => view.parent_span_id = value.bytes(field)?,
                f::NAME => view.name = value.string(field)?,
                f::KIND => view.kind = value.varint32(field)? as i32,
                f::START_TIME_UNIX_NANO => view.start_time_unix_nano = value.fixed64(field)?,
                f::END_TIME_UNIX_NANO => view.end_time_unix_nano = value.fixed64(field)?,
                f::DROPPED_ATTRIBUTES_COUNT => view.dropped_attributes_count = value.varint32(field)?,
                f::DROPPED_EVENTS_COUNT => view.dropped_events_count = value.varint32(field)?,
                f::DROPPED_LINKS_COUNT => view.dropped_links_count = value.varint32(field)?,
                f::STATUS => view.status = StatusView::parse(value.bytes(field)?)?,
                f::FLAGS => view.flags = value.fixed32(field)?,
                f::ATTRIBUTES | f::EVENTS | f::LINKS => {
                    value.bytes(field)?;
                    let extent = match field {
                        f::ATTRIBUTES => &mut attributes,
                        f::EVENTS => &mut events,
                        _ => &mut links,
                    };
                    extent.cover(at);
                }
                _ => {}
            }
        }
        view.attributes_buf = attributes.of(buf);
        view.events_buf = events.of(buf);
        view.links_buf = links.of(buf);
        Ok(view)
    }
}

impl<'a> SpanView<'a> {
    pub(crate) fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.attributes_buf, fields::span::ATTRIBUTES)
    }

    pub(crate) fn events(&self) -> Repeated<'a, EventView<'a>> {
        Repeated::new(self.events_buf, fields::span::EVENTS)
    }

    pub(crate) fn links(&self) -> Repeated<'a, LinkView<'a>> {
        Repeated::new(self.links_buf, fields::span::LINKS)
    }

    /// Why this span cannot be stored on its own, if it cannot: the table keys rows by valid ids.
    pub(crate) fn rejection(&self) -> Option<&'static str> {
        if self.trace_id.len() != 16 {
            Some("trace_id must be 16 bytes")
        } else if self.span_id.len() != 8 {
            Some("span_id must be 8 bytes")
        } else if !self.parent_span_id.is_empty() && self.parent_span_id.len() != 8 {
            Some("parent_span_id must be empty or 8 bytes")
        } else {
            None
        }
    }
}

/// `Status`.
#[derive(Default, Clone, Copy)]
pub(crate) struct StatusView<'a> {
    pub(crate) message: &'a str,
    pub(crate) code: i32,
}

impl<'a> Message<'a> for StatusView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::status as f;
        let mut view = StatusView::default();
        let mut r = Reader::new(buf);
        while let Some((field, value)) = r.next_field()? {
            match field {
                f::MESSAGE => view.message = value.string(field)?,
                f::CODE => view.code = value.varint32(field)? as i32,
                _ => {}
            }
        }
        Ok(view)
    }
}

/// `Span.Event`.
pub(crate) struct EventView<'a> {
    pub(crate) time_unix_nano: u64,
    pub(crate) name: &'a str,
    pub(crate) attributes: Attributes<'a>,
    pub(crate) dropped_attributes_count: u32,
}

impl<'a> Message<'a> for EventView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::event as f;
        let mut view =
            EventView { time_unix_nano: 0, name: "", attributes: Attributes::default(), dropped_attributes_count: 0 };
        let mut attributes = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::TIME_UNIX_NANO => view.time_unix_nano = value.fixed64(field)?,
                f::NAME => view.name = value.string(field)?,
                f::ATTRIBUTES => {
                    value.bytes(field)?;
                    attributes.cover(at);
                }
                f::DROPPED_ATTRIBUTES_COUNT => view.dropped_attributes_count = value.varint32(field)?,
                _ => {}
            }
        }
        view.attributes = Attributes::new(attributes.of(buf), f::ATTRIBUTES);
        Ok(view)
    }
}

/// `Span.Link`.
pub(crate) struct LinkView<'a> {
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) trace_state: &'a str,
    pub(crate) attributes: Attributes<'a>,
    pub(crate) dropped_attributes_count: u32,
    pub(crate) flags: u32,
}

impl<'a> Message<'a> for LinkView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::link as f;
        let mut view = LinkView {
            trace_id: &[],
            span_id: &[],
            trace_state: "",
            attributes: Attributes::default(),
            dropped_attributes_count: 0,
            flags: 0,
        };
        let mut attributes = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::TRACE_ID => view.trace_id = value.bytes(field)?,
                f::SPAN_ID => view.span_id = value.bytes(field)?,
                f::TRACE_STATE => view.trace_state = value.string(field)?,
                f::ATTRIBUTES => {
                    value.bytes(field)?;
                    attributes.cover(at);
                }
                f::DROPPED_ATTRIBUTES_COUNT => view.dropped_attributes_count = value.varint32(field)?,
                f::FLAGS => view.flags = value.fixed32(field)?,
                _ => {}
            }
        }
        view.attributes = Attributes::new(attributes.of(buf), f::ATTRIBUTES);
        Ok(view)
    }
}

/// A list of `KeyValue`s: one repeated field of some parent message.
#[derive(Default, Clone, Copy)]
pub(crate) struct Attributes<'a> {
    parent: &'a [u8],
    field: u32,
}

impl<'a> Attributes<'a> {
    fn new(parent: &'a [u8], field: u32) -> Self {
        Attributes { parent, field }
    }
}

impl<'a> IntoIterator for Attributes<'a> {
    type Item = Result<KeyValueView<'a>, DecodeError>;
    type IntoIter = Repeated<'a, KeyValueView<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        // A default (empty) `Attributes` has field 0, which never matches a real field.
        Repeated::new(self.parent, self.field)
    }
}

/// `KeyValue`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KeyValueView<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: AnyValue<'a>,
}

impl<'a> Message<'a> for KeyValueView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::key_value as f;
        let mut view = KeyValueView { key: "", value: AnyValue::Empty };
        let mut r = Reader::new(buf);
        while let Some((field, value)) = r.next_field()? {
            match field {
                f::KEY => view.key = value.string(field)?,
                f::VALUE => view.value = AnyValue::parse(value.bytes(field)?)?,
                _ => {}
            }
        }
        Ok(view)
    }
}

/// `AnyValue`: scalars read, arrays and kvlists kept as their bytes and read on demand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AnyValue<'a> {
    /// No value set.
    Empty,
    String(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(ArrayValue<'a>),
    KvList(KvListValue<'a>),
}

impl<'a> Message<'a> for AnyValue<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::any_value as f;
        let mut out = AnyValue::Empty;
        let mut r = Reader::new(buf);
        // A oneof: the last member present wins.
        while let Some((field, value)) = r.next_field()? {
            out = match field {
                f::STRING => AnyValue::String(value.string(field)?),
                f::BOOL => AnyValue::Bool(value.varint(field)? != 0),
                f::INT => AnyValue::Int(value.varint(field)? as i64),
                f::DOUBLE => AnyValue::Double(f64::from_bits(value.fixed64(field)?)),
                f::ARRAY => AnyValue::Array(ArrayValue { buf: value.bytes(field)? }),
                f::KVLIST => AnyValue::KvList(KvListValue { buf: value.bytes(field)? }),
                f::BYTES => AnyValue::Bytes(value.bytes(field)?),
                _ => continue,
            };
        }
        Ok(out)
    }
}

/// `ArrayValue`, not yet read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ArrayValue<'a> {
    buf: &'a [u8],
}

impl<'a> ArrayValue<'a> {
    /// The elements; `depth` is this array's nesting level, refused beyond [`MAX_VALUE_DEPTH`].
    pub(crate) fn iter(&self, depth: u32) -> Result<Repeated<'a, AnyValue<'a>>, DecodeError> {
        if depth > MAX_VALUE_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        Ok(Repeated::new(self.buf, fields::LIST_VALUES))
    }
}

/// `KeyValueList`, not yet read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KvListValue<'a> {
    buf: &'a [u8],
}

impl<'a> KvListValue<'a> {
    /// The entries; `depth` is this list's nesting level, refused beyond [`MAX_VALUE_DEPTH`].
    pub(crate) fn iter(&self, depth: u32) -> Result<Repeated<'a, KeyValueView<'a>>, DecodeError> {
        if depth > MAX_VALUE_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        Ok(Repeated::new(self.buf, fields::LIST_VALUES))
    }
}
