//! otel-delta-layout: should the rows of a data file be sorted, and by what? Measures, for one file written by
//! `otel_delta::ParquetFile` from `Rows` (v1 spans), three in-file orders (arrival, trace_id,
//! start_time; plus trace_id sorted per 64 MiB batch, what a streaming writer could do without holding a file):
//! the sort + encode cost, the file size, and what the file's own pruning information (row group min/max, the
//! `trace_id` bloom filter, the page index) lets a reader skip for a trace lookup and for a 1% time range.
//!
//! Workload: `perf/workload.rs` requests give the row contents, but that generator puts all spans of a request
//! in one trace (512 consecutive spans of one trace, start times 1 µs apart, requests 1 s apart): arrival order
//! would then already be trace order and time order. Here the trace ids and times of those requests are
//! rewritten in place (fixed-size protobuf fields) from a simulated stream: traces start uniformly over the
//! file's window at `--rate` spans/s, 10-20 spans each, trace durations log-uniform 1 ms-2 s, children start
//! inside their trace; a span arrives when its SDK batch processor exports it, `end + uniform(0, 5 s)` (the
//! OpenTelemetry SDK's default 5 s schedule delay). Spans are laid into the request slots in arrival order, so
//! one request holds spans of many concurrent traces and one trace spreads over several requests.
//!
//! `cargo run --release --bin otel-delta-layout -- --help`

#[path = "workload.rs"]
mod workload;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{interleave_record_batch, lexsort_to_indices, sort_to_indices, SortColumn};
use arrow::datatypes::Int64Type;
use bytes::Bytes;
use clap::Parser;
use otel_delta::{Codec, Contract, ParquetFile, Rows};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use parquet::file::statistics::Statistics;

#[derive(Parser, Debug)]
#[command(about = "In-file row order of data files: sort + encode cost against trace and time-range pruning")]
struct Args {
    /// Workload profile (small or mixed).
    #[arg(long, default_value = "small")]
    profile: String,
    /// Spans in the file (rounded up to whole requests).
    #[arg(long, default_value_t = 1_600_000)]
    spans: usize,
    /// Span rate of the simulated service (spans/s): sets the time window the file covers.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    /// Repetitions of each sort + encode (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Trace ids looked up.
    #[arg(long, default_value_t = 200)]
    lookups: usize,
    /// Rows per `write` call (the optimize rewrite reads and writes 8192-row batches).
    #[arg(long, default_value_t = 8192)]
    write_rows: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Seconds of CPU this thread used (the sort and the encoder run on the calling thread).
fn thread_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) as f64 / 1e9
}

// ---------------------------------------------------------------------------------------------------------------
// Workload: rewrite trace ids and times of the generated requests from a simulated arrival stream.

/// Offsets in a request body of one span's fixed-size fields.
struct SpanSlot {
    trace_id: usize,
    start: usize,
    end: usize,
    /// Event times (kept at their offset from the span's start).
    events: Vec<usize>,
}

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Walk the fields of a message in `b[start..end]`, calling `f(field, wire, value_start, value_end)`.
fn fields(b: &[u8], start: usize, end: usize, mut f: impl FnMut(u64, u64, usize, usize)) {
    let mut pos = start;
    while pos < end {
        let key = varint(b, &mut pos);
        let (field, wire) = (key >> 3, key & 7);
        let (vs, ve) = match wire {
            0 => {
                let s = pos;
                varint(b, &mut pos);
                (s, pos)
            }
            1 => (pos, pos + 8),
            2 => {
                let n = varint(b, &mut pos) as usize;
                (pos, pos + n)
            }
            5 => (pos, pos + 4),
            _ => panic!("unexpected wire type {wire}"),
        };
        pos = ve;
        f(field, wire, vs, ve);
    }
}

fn span_slots(body: &[u8]) -> Vec<SpanSlot> {
    let mut slots = Vec::new();
    fields(body, 0, body.len(), |f, w, s, e| {
        if (f, w) != (1, 2) {
            return;
        }
        fields(body, s, e, |f, w, s, e| {
            if (f, w) != (2, 2) {
                return;
            }
            fields(body, s, e, |f, w, s, e| {
                if (f, w) != (2, 2) {
                    return;
                }
                let mut slot = SpanSlot { trace_id: 0, start: 0, end: 0, events: Vec::new() };
                fields(body, s, e, |f, w, s, e| match (f, w) {
                    (1, 2) => {
                        assert_eq!(e - s, 16);
                        slot.trace_id = s;
                    }
                    (7, 1) => slot.start = s,
                    (8, 1) => slot.end = s,
                    (11, 2) => fields(body, s, e, |f, w, s, _| {
                        if (f, w) == (1, 1) {
                            slot.events.push(s);
                        }
                    }),
                    _ => {}
                });
                assert!(slot.trace_id > 0 && slot.start > 0 && slot.end > 0, "a workload span has id and times");
                slots.push(slot);
            });
        });
    });
    slots
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// One simulated span: its trace, times and arrival at the collector.
struct SimSpan {
    trace: [u8; 16],
    start: u64,
    end: u64,
    arrival: u64,
}

const T0: u64 = 1_764_000_000_000_000_000;

fn simulate(g: &mut workload::Gen, spans: usize, rate: f64) -> Vec<SimSpan> {
    let window = (spans as f64 / rate * 1e9) as u64;
    let (min_d, max_d) = (1e6f64.ln(), 2e9f64.ln());
    let mut out = Vec::with_capacity(spans + 20);
    while out.len() < spans {
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&g.next().to_le_bytes());
        trace[8..].copy_from_slice(&g.next().to_le_bytes());
        let t0 = T0 + g.below(window);
        let u = g.below(1 << 30) as f64 / (1u64 << 30) as f64;
        let duration = (min_d + u * (max_d - min_d)).exp() as u64;
        let k = 10 + g.below(11);
        for i in 0..k {
            let (start, end) = if i == 0 {
                (t0, t0 + duration)
            } else {
                let start = t0 + g.below(duration);
                (start, start + 1 + g.below(t0 + duration - start))
            };
            let arrival = end + g.below(5_000_000_000);
            out.push(SimSpan { trace, start, end, arrival });
        }
    }
    out.truncate(spans);
    out.sort_by_key(|s| s.arrival);
    out
}

/// Bytes of OTLP requests per encoded record batch, as the collector cuts them (`MAX_BATCH_BYTES`, 64 MiB).
const BATCH_BYTES: usize = 64 << 20;

/// Rows of at least `spans` spans of `profile`, in arrival order, as the collector builds them: requests whose
/// trace ids and times follow the simulated arrival stream, appended to `Rows`, one record batch per
/// 64 MiB of requests. Returns the batches and the OTLP bytes they came from.
fn build_batches(profile: workload::Profile, spans: usize, rate: f64, seed: u64) -> (Vec<RecordBatch>, usize) {
    let per_request = profile.spans_per_request();
    let count = spans.div_ceil(per_request);
    let mut g = workload::Gen::new(seed ^ 0x5eed);
    let mut sim = simulate(&mut g, count * per_request, rate).into_iter();
    let (mut batches, mut columns, mut input, mut pending) = (Vec::new(), Rows::new(Contract::spans_v1()), 0, 0);
    // One pool (one vocabulary, as real traffic shares one), each request freed once its rows are built.
    for mut r in workload::pool(profile, count, seed) {
        for slot in span_slots(&r.body) {
            let s = sim.next().expect("one simulated span per slot");
            let old_start = read_u64(&r.body, slot.start);
            let b = &mut r.body;
            b[slot.trace_id..slot.trace_id + 16].copy_from_slice(&s.trace);
            b[slot.start..slot.start + 8].copy_from_slice(&s.start.to_le_bytes());
            b[slot.end..slot.end + 8].copy_from_slice(&s.end.to_le_bytes());
            for e in slot.events {
                let t = s.start + read_u64(b, e).saturating_sub(old_start);
                b[e..e + 8].copy_from_slice(&t.to_le_bytes());
            }
        }
        columns.append_request(&r.body).expect("a valid request");
        input += r.body.len();
        pending += r.body.len();
        if pending >= BATCH_BYTES {
            batches.push(columns.finish().expect("batch"));
            pending = 0;
        }
    }
    if columns.rows() > 0 {
        batches.push(columns.finish().expect("batch"));
    }
    (batches, input)
}

// ---------------------------------------------------------------------------------------------------------------
// Orders and encoding.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Order {
    Arrival,
    TraceId,
    StartTime,
    /// trace_id, start_time within each encoded batch (what the streaming collector could do without holding a
    /// whole file).
    TraceIdPerBatch,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Arrival => "arrival",
            Order::TraceId => "trace_id, start_time",
            Order::StartTime => "start_time",
            Order::TraceIdPerBatch => "trace_id per 64 MiB batch",
        }
    }
}

fn column(batch: &RecordBatch, name: &str) -> Arc<dyn Array> {
    batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).clone()
}

/// Row order of `batches` (as (batch, row) pairs), sorted by (trace_id, start_time) or start_time.
fn sort_rows(batches: &[RecordBatch], by_trace: bool) -> Vec<(usize, usize)> {
    let key = |name: &str| {
        let parts: Vec<Arc<dyn Array>> = batches.iter().map(|b| column(b, name)).collect();
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        arrow::compute::concat(&refs).expect("concat")
    };
    let start = key("start_time_unix_nano");
    let indices = if by_trace {
        let keys = [SortColumn { values: key("trace_id"), options: None }, SortColumn { values: start, options: None }];
        lexsort_to_indices(&keys, None).expect("sort")
    } else {
        sort_to_indices(&start, None, None).expect("sort")
    };
    let mut first = Vec::with_capacity(batches.len());
    let mut at = 0;
    for b in batches {
        first.push(at);
        at += b.num_rows();
    }
    indices
        .values()
        .iter()
        .map(|&i| {
            let i = i as usize;
            let b = first.partition_point(|&f| f <= i) - 1;
            (b, i - first[b])
        })
        .collect()
}

struct Cost {
    /// Computing the order.
    sort: f64,
    /// Gathering rows into write batches in that order.
    gather: f64,
    encode: f64,
    /// CPU time of all of it (this thread).
    cpu: f64,
}

/// A file being written in memory, and what writing it cost.
struct Sink {
    file: ParquetFile,
    bytes: Vec<u8>,
    cost: Cost,
}

impl Sink {
    fn write(&mut self, batch: &RecordBatch) {
        let t = Instant::now();
        self.file.write(batch).expect("write");
        if let Some(b) = self.file.take_written(1) {
            self.bytes.extend_from_slice(&b);
        }
        self.cost.encode += t.elapsed().as_secs_f64();
    }

    fn gather_and_write(&mut self, from: &[&RecordBatch], rows: &[(usize, usize)], write_rows: usize) {
        for chunk in rows.chunks(write_rows) {
            let t = Instant::now();
            let batch = interleave_record_batch(from, chunk).expect("interleave");
            self.cost.gather += t.elapsed().as_secs_f64();
            self.write(&batch);
        }
    }
}

/// Write the rows of `batches` in `order` into one file, `write_rows` rows per `write` (a sorted order is
/// gathered batch by batch from the arrival batches, never materialized whole).
fn encode(batches: &[RecordBatch], order: Order, write_rows: usize) -> (Bytes, Cost) {
    let cpu0 = thread_cpu();
    let cost = Cost { sort: 0.0, gather: 0.0, encode: 0.0, cpu: 0.0 };
    let mut sink =
        Sink { file: ParquetFile::new(Contract::spans_v1(), Codec::Zstd(1)).expect("writer"), bytes: Vec::new(), cost };
    match order {
        Order::Arrival => {
            for batch in batches {
                for at in (0..batch.num_rows()).step_by(write_rows) {
                    sink.write(&batch.slice(at, write_rows.min(batch.num_rows() - at)));
                }
            }
        }
        Order::TraceId | Order::StartTime => {
            let t = Instant::now();
            let rows = sort_rows(batches, order == Order::TraceId);
            sink.cost.sort += t.elapsed().as_secs_f64();
            let from: Vec<&RecordBatch> = batches.iter().collect();
            sink.gather_and_write(&from, &rows, write_rows);
        }
        Order::TraceIdPerBatch => {
            for batch in batches {
                let t = Instant::now();
                let rows = sort_rows(std::slice::from_ref(batch), true);
                sink.cost.sort += t.elapsed().as_secs_f64();
                sink.gather_and_write(&[batch], &rows, write_rows);
            }
        }
    }
    let t = Instant::now();
    let Sink { file, mut bytes, mut cost } = sink;
    bytes.extend_from_slice(&file.finish().expect("finish").tail);
    cost.encode += t.elapsed().as_secs_f64();
    cost.cpu = thread_cpu() - cpu0;
    (Bytes::from(bytes), cost)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------------------------
// What a reader's pruning selects.

fn leaf(meta: &ParquetMetaData, path: &str) -> usize {
    let schema = meta.file_metadata().schema_descr();
    (0..schema.num_columns()).find(|&i| schema.column(i).path().string() == path).expect("leaf column")
}

struct Pruning {
    row_groups: usize,
    pages_trace: usize,
    pages_time: usize,
    page_index: bool,
    /// Per trace lookup: row groups read (bloom and min/max pass), row groups holding the trace,
    /// trace_id pages whose index min/max can hold the id, pages holding the trace, rows in selected pages.
    lookup: [f64; 5],
    /// Per 1% time range: row groups selected, start_time pages selected, rows in selected pages.
    range: [f64; 3],
    file_time: (i64, i64),
    /// Per trace lookup: row groups whose trace_id min/max alone can hold the id (no bloom filter).
    minmax_only: f64,
}

fn evaluate(bytes: &Bytes, traces: &[String], window: (i64, i64)) -> Pruning {
    let options = ReadOptionsBuilder::new()
        .with_page_index()
        .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
        .build();
    let reader = SerializedFileReader::new_with_options(bytes.clone(), options).expect("reader");
    let meta = reader.metadata();
    let (tid, st) = (leaf(meta, "trace_id"), leaf(meta, "start_time_unix_nano"));
    let groups: Vec<Box<dyn RowGroupReader + '_>> =
        (0..meta.num_row_groups()).map(|i| reader.get_row_group(i).expect("row group")).collect();
    let column_index = meta.column_index().expect("the writer wrote a column index");
    let offset_index = meta.offset_index().expect("the writer wrote an offset index");
    let page_index = matches!(column_index[0][tid], ColumnIndexMetaData::BYTE_ARRAY(_))
        && matches!(column_index[0][st], ColumnIndexMetaData::INT64(_));

    // Row ranges of each page, per row group, for a column.
    let page_rows = |rg: usize, col: usize| -> Vec<(i64, i64)> {
        let locs = offset_index[rg][col].page_locations();
        let n = meta.row_group(rg).num_rows();
        (0..locs.len()).map(|i| (locs[i].first_row_index, locs.get(i + 1).map_or(n, |l| l.first_row_index))).collect()
    };

    // Where each sampled trace actually is (row groups, trace_id pages), from the file's own trace_id column.
    let mut holding: HashMap<&str, BTreeSet<(usize, usize)>> =
        traces.iter().map(|t| (t.as_str(), BTreeSet::new())).collect();
    for rg in 0..meta.num_row_groups() {
        let pages = page_rows(rg, tid);
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).expect("arrow reader");
        let mask = ProjectionMask::leaves(builder.parquet_schema(), [tid]);
        let rows = builder.with_projection(mask).with_row_groups(vec![rg]).with_batch_size(1 << 16).build();
        let (mut row, mut page) = (0i64, 0usize);
        for batch in rows.expect("reader") {
            for v in batch.expect("batch").column(0).as_string::<i32>().iter() {
                while row >= pages[page].1 {
                    page += 1;
                }
                if let Some(h) = v.and_then(|v| holding.get_mut(v)) {
                    h.insert((rg, page));
                }
                row += 1;
            }
        }
    }

    let total_rows = meta.file_metadata().num_rows() as f64;
    let (mut lookup, mut minmax_only) = ([0f64; 5], 0.0);
    for t in traces {
        let id = t.as_bytes();
        for (rg, group) in groups.iter().enumerate() {
            let chunk = meta.row_group(rg).column(tid);
            let in_range = match chunk.statistics() {
                Some(Statistics::ByteArray(s)) => {
                    s.min_opt().is_none_or(|m| m.data() <= id) && s.max_opt().is_none_or(|m| id <= m.data())
                }
                _ => true,
            };
            minmax_only += f64::from(u8::from(in_range));
            let bloom = group.get_column_bloom_filter(tid).is_none_or(|b| b.check(t.as_str()));
            if !(in_range && bloom) {
                continue;
            }
            lookup[0] += 1.0;
            let ColumnIndexMetaData::BYTE_ARRAY(index) = &column_index[rg][tid] else { continue };
            let pages = page_rows(rg, tid);
            for (p, rows) in pages.iter().enumerate() {
                let hit = index.min_value(p).is_some_and(|m| m <= id) && index.max_value(p).is_some_and(|m| id <= m);
                if hit {
                    lookup[2] += 1.0;
                    lookup[4] += (rows.1 - rows.0) as f64;
                }
            }
        }
        let h = &holding[t.as_str()];
        lookup[1] += h.iter().map(|p| p.0).collect::<BTreeSet<_>>().len() as f64;
        lookup[3] += h.len() as f64;
    }
    lookup.iter_mut().for_each(|v| *v /= traces.len() as f64);
    lookup[4] /= total_rows;
    minmax_only /= traces.len() as f64;

    // 1% time ranges at 19 positions across the window.
    let (lo, hi) = window;
    let width = (hi - lo) / 100;
    let mut range = [0f64; 3];
    let positions = 19;
    for k in 0..positions {
        let from = lo + (hi - lo - width) / (positions as i64 - 1) * k as i64;
        let to = from + width;
        for (rg, group_index) in column_index.iter().enumerate() {
            let overlaps = match meta.row_group(rg).column(st).statistics() {
                Some(Statistics::Int64(s)) => {
                    s.min_opt().is_none_or(|&m| m <= to) && s.max_opt().is_none_or(|&m| from <= m)
                }
                _ => true,
            };
            if !overlaps {
                continue;
            }
            range[0] += 1.0;
            let ColumnIndexMetaData::INT64(index) = &group_index[st] else { continue };
            for (p, rows) in page_rows(rg, st).iter().enumerate() {
                if index.min_value(p).is_some_and(|&m| m <= to) && index.max_value(p).is_some_and(|&m| from <= m) {
                    range[1] += 1.0;
                    range[2] += (rows.1 - rows.0) as f64;
                }
            }
        }
    }
    range.iter_mut().for_each(|v| *v /= positions as f64);
    range[2] /= total_rows;

    let mut file_time = (i64::MAX, i64::MIN);
    for rg in meta.row_groups() {
        if let Some(Statistics::Int64(s)) = rg.column(st).statistics() {
            file_time.0 = file_time.0.min(*s.min_opt().expect("min"));
            file_time.1 = file_time.1.max(*s.max_opt().expect("max"));
        }
    }
    let pages = |col: usize| (0..meta.num_row_groups()).map(|rg| offset_index[rg][col].page_locations().len()).sum();
    Pruning {
        row_groups: meta.num_row_groups(),
        pages_trace: pages(tid),
        pages_time: pages(st),
        page_index,
        lookup,
        range,
        file_time,
        minmax_only,
    }
}

fn main() {
    let args = Args::parse();
    let profile = workload::Profile::parse(&args.profile).expect("profile: small or mixed");
    let t = Instant::now();
    let (batches, input_bytes) = build_batches(profile, args.spans, args.rate, args.seed);
    let spans: usize = batches.iter().map(|b| b.num_rows()).sum();
    eprintln!(
        "workload: {spans} {} spans, {:.1} MB OTLP, {} batches, {:.1} MB Arrow, built in {:.1} s",
        profile.name(),
        input_bytes as f64 / 1e6,
        batches.len(),
        batches.iter().map(|b| b.get_array_memory_size()).sum::<usize>() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Trace ids to look up: the traces of evenly spaced rows, distinct.
    let mut ids: Vec<String> = Vec::new();
    let (mut window, mut all) = ((i64::MAX, i64::MIN), Vec::new());
    for b in &batches {
        let col = column(b, "trace_id");
        all.extend(col.as_string::<i32>().iter().flatten().map(str::to_owned));
        let times = column(b, "start_time_unix_nano");
        let times = times.as_primitive::<Int64Type>();
        window.0 = window.0.min(arrow::compute::min(times).expect("min"));
        window.1 = window.1.max(arrow::compute::max(times).expect("max"));
    }
    let step = spans / args.lookups;
    let mut i = step / 2;
    while ids.len() < args.lookups && i < spans {
        if !ids.contains(&all[i]) {
            ids.push(all[i].clone());
        }
        i += step;
    }
    all.sort_unstable();
    all.dedup();
    eprintln!(
        "{} traces, {:.1} spans each; start times over {:.1} s",
        all.len(),
        spans as f64 / all.len() as f64,
        (window.1 - window.0) as f64 / 1e9
    );
    drop(all);

    let orders = [Order::Arrival, Order::TraceId, Order::StartTime, Order::TraceIdPerBatch];
    let mut rows_out = Vec::new();
    for order in orders {
        let mut costs = Vec::new();
        let mut file = Bytes::new();
        for _ in 0..args.reps {
            let (f, c) = encode(&batches, order, args.write_rows);
            file = f;
            costs.push(c);
        }
        let med = |f: fn(&Cost) -> f64| median(costs.iter().map(f).collect());
        let cost =
            Cost { sort: med(|c| c.sort), gather: med(|c| c.gather), encode: med(|c| c.encode), cpu: med(|c| c.cpu) };
        let pruning = evaluate(&file, &ids, window);
        eprintln!(
            "{}: sort {:.2} s, gather {:.2} s, encode {:.2} s, cpu {:.2} s, {} bytes, {} row groups",
            order.name(),
            cost.sort,
            cost.gather,
            cost.encode,
            cost.cpu,
            file.len(),
            pruning.row_groups
        );
        rows_out.push((order, cost, file.len(), pruning));
    }

    let m = spans as f64 / 1e6;
    println!(
        "\n{} profile: {spans} spans, {:.1} MB OTLP protobuf, {} traces looked up, simulated rate {} spans/s \
         (start times over {:.0} s), {} write batches of {} rows, zstd:1, median of {} runs\n",
        profile.name(),
        input_bytes as f64 / 1e6,
        ids.len(),
        args.rate,
        (window.1 - window.0) as f64 / 1e9,
        batches.len(),
        args.write_rows,
        args.reps
    );
    println!(
        "| order | sort+gather s | sort+gather+encode s | CPU s / M spans | MB/s OTLP in | file MB | row groups \
         | pages trace_id / start_time | trace lookup: row groups read (holding) \
         | trace lookup: trace_id pages read (holding) | % of trace_id pages | % rows selected \
         | 1% time range: row groups | start_time pages | % of pages | % rows selected |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (order, cost, size, p) in &rows_out {
        let total = cost.sort + cost.gather + cost.encode;
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {} | {} / {} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.1}% \
             | {:.1}% | {:.2} | {:.1} | {:.1}% | {:.1}% |",
            order.name(),
            cost.sort + cost.gather,
            total,
            cost.cpu / m,
            input_bytes as f64 / 1e6 / total,
            *size as f64 / 1e6,
            p.row_groups,
            p.pages_trace,
            p.pages_time,
            p.lookup[0],
            p.lookup[1],
            p.lookup[2],
            p.lookup[3],
            100.0 * p.lookup[2] / p.pages_trace as f64,
            100.0 * p.lookup[4],
            p.range[0],
            p.range[1],
            100.0 * p.range[1] / p.pages_time as f64,
            100.0 * p.range[2],
        );
    }
    println!();
    for (order, _, _, p) in &rows_out {
        println!(
            "- {}: page index written (trace_id BYTE_ARRAY and start_time INT64 column index, offset index): {}; \
             row groups per trace lookup by trace_id min/max alone (no bloom filter): {:.2}; \
             file-level start_time min/max (what Delta file skipping sees): {} .. {}",
            order.name(),
            p.page_index,
            p.minmax_only,
            p.file_time.0,
            p.file_time.1
        );
    }
}
