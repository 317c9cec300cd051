//! Synthetic OTLP requests for benches and the load generator (`benchmarking.md`): three trace profiles and a logs
//! one,
//! word-like text (compresses about 3x with zstd), and distinct ids, times and text in every request, so
//! neither dictionary encoding nor compression sees a repeated payload. Encoded with a tiny protobuf writer,
//! so the load generator needs no protobuf crate. Deterministic for a given seed.

#![allow(dead_code)]

/// Workload shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// 512 spans per request, ~400 B each, ~10 HTTP semantic-convention attributes, events and links.
    Small,
    /// 10 spans per request, ~100 KB each: GenAI prompts and completions as JSON chat text.
    Large,
    /// 64 spans per request from two resources, 1-20 KB payloads, arrays, kvlists, bytes, events, trace_state.
    Mixed,
    /// An `ExportLogsServiceRequest` of 512 log records, ~300 B each: a line of text, a severity, a few attributes,
    /// trace context on three records of four.
    Logs,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "small" => Some(Profile::Small),
            "large" => Some(Profile::Large),
            "mixed" => Some(Profile::Mixed),
            "logs" => Some(Profile::Logs),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Small => "small",
            Profile::Large => "large",
            Profile::Mixed => "mixed",
            Profile::Logs => "logs",
        }
    }

    /// Rows per request: spans, or log records.
    pub fn spans_per_request(self) -> usize {
        match self {
            Profile::Small | Profile::Logs => 512,
            Profile::Large => 10,
            Profile::Mixed => 64,
        }
    }

    /// The OTLP/HTTP path its requests go to.
    pub fn path(self) -> &'static str {
        match self {
            Profile::Logs => "/v1/logs",
            _ => "/v1/traces",
        }
    }
}

/// One encoded export request (`ExportTraceServiceRequest`, or `ExportLogsServiceRequest` for [`Profile::Logs`])
/// and its row count.
pub struct Request {
    pub body: Vec<u8>,
    pub spans: usize,
}

/// `count` distinct requests of `profile`.
pub fn pool(profile: Profile, count: usize, seed: u64) -> Vec<Request> {
    let mut g = Gen::new(seed);
    (0..count).map(|i| request(profile, &mut g, i as u64)).collect()
}

/// splitmix64: fast, good enough for synthetic data.
pub struct Gen {
    state: u64,
    words: Vec<String>,
}

impl Gen {
    pub fn new(seed: u64) -> Self {
        let mut g = Gen { state: seed ^ 0x9e37_79b9_7f4a_7c15, words: Vec::new() };
        const SYLLABLES: &[&str] = &[
            "ka", "lo", "mi", "ren", "ta", "vo", "shi", "an", "el", "tor", "pa", "qu", "is", "mar", "de", "un", "co",
            "ri", "sa", "ne", "ul", "bra", "fi", "go", "hen", "ja", "ost", "pe", "ry", "zu",
        ];
        for _ in 0..2000 {
            let n = 1 + g.below(4) as usize;
            let word: String = (0..n).map(|_| SYLLABLES[g.below(SYLLABLES.len() as u64) as usize]).collect();
            g.words.push(word);
        }
        g
    }

    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Word-like text of about `len` bytes (Zipf-ish word choice: frequent words repeat, as in prose).
    pub fn text(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            let r = self.below(self.words.len() as u64);
            let i = (r * r / self.words.len() as u64) as usize;
            s.push_str(&self.words[i]);
            s.push(if self.below(12) == 0 { '.' } else { ' ' });
        }
        s.truncate(len);
        s
    }
}

/// A minimal protobuf writer.
#[derive(Default)]
pub struct Msg(pub Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }
    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, 0);
        self.varint(v);
        self
    }
    pub fn fixed64(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn fixed32(&mut self, field: u32, v: u32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }
    pub fn msg(&mut self, field: u32, build: impl FnOnce(&mut Msg)) -> &mut Self {
        let mut child = Msg::default();
        build(&mut child);
        self.bytes(field, &child.0)
    }
}

enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    StrArray(&'a [&'a str]),
    KvList(&'a [(&'a str, &'a str)]),
}

fn any_value(m: &mut Msg, v: &Val<'_>) {
    match v {
        Val::Str(s) => {
            m.str(1, s);
        }
        Val::Bool(b) => {
            m.uint(2, u64::from(*b));
        }
        Val::Int(i) => {
            m.uint(3, *i as u64);
        }
        Val::Double(d) => {
            m.fixed64(4, d.to_bits());
        }
        Val::StrArray(items) => {
            m.msg(5, |a| {
                for s in items.iter() {
                    a.msg(1, |v| {
                        v.str(1, s);
                    });
                }
            });
        }
        Val::KvList(items) => {
            m.msg(6, |l| {
                for (k, s) in items.iter() {
                    l.msg(1, |kv| {
                        kv.str(1, k).msg(2, |v| {
                            v.str(1, s);
                        });
                    });
                }
            });
        }
        Val::Bytes(b) => {
            m.bytes(7, b);
        }
    }
}

fn attr(m: &mut Msg, field: u32, key: &str, v: Val<'_>) {
    m.msg(field, |kv| {
        kv.str(1, key).msg(2, |a| any_value(a, &v));
    });
}

const SERVICES: &[&str] = &["checkout", "cart", "payments", "search", "agent-gateway", "inventory"];
const ROUTES: &[&str] =
    &["/api/cart", "/api/orders/{id}", "/search", "/v1/chat/completions", "/health", "/api/users/{id}"];

fn request(profile: Profile, g: &mut Gen, index: u64) -> Request {
    if profile == Profile::Logs {
        return logs_request(g, index);
    }
    let base_time = 1_700_000_000_000_000_000u64 + index * 1_000_000_000 + g.below(1_000_000);
    let resources: usize = if profile == Profile::Mixed { 2 } else { 1 };
    let per_resource = profile.spans_per_request() / resources;
    let mut req = Msg::default();
    for r in 0..resources {
        let service = SERVICES[g.below(SERVICES.len() as u64) as usize];
        let host = format!("{}-{:x}", service, g.next() & 0xffff_ffff);
        let mut rs = Msg::default();
        rs.msg(1, |res| {
            attr(res, 1, "service.name", Val::Str(service));
            attr(res, 1, "host.name", Val::Str(&host));
            attr(res, 1, "telemetry.sdk.language", Val::Str("rust"));
            attr(res, 1, "deployment.environment", Val::Str(if r == 0 { "prod" } else { "staging" }));
        });
        rs.msg(2, |ss| {
            ss.msg(1, |scope| {
                scope.str(1, "otel-delta.workload").str(2, "1.0.0");
            });
            let trace_id = g.bytes(16);
            for s in 0..per_resource {
                let span = span(profile, g, &trace_id, base_time + s as u64 * 1000, s);
                ss.bytes(2, &span.0);
            }
            ss.str(3, "https://opentelemetry.io/schemas/1.26.0");
        });
        rs.str(3, "https://opentelemetry.io/schemas/1.26.0");
        req.bytes(1, &rs.0);
    }
    Request { body: req.0, spans: resources * per_resource }
}

const LOGGERS: &[&str] = &["app.checkout", "app.cart.service", "payments.gateway", "search.index", "agent.runner"];
const SEVERITIES: &[(u64, &str)] = &[(9, "INFO"), (9, "INFO"), (9, "INFO"), (5, "DEBUG"), (13, "WARN"), (17, "ERROR")];

fn logs_request(g: &mut Gen, index: u64) -> Request {
    let base_time = 1_700_000_000_000_000_000u64 + index * 1_000_000_000 + g.below(1_000_000);
    let records = Profile::Logs.spans_per_request();
    let service = SERVICES[g.below(SERVICES.len() as u64) as usize];
    let host = format!("{}-{:x}", service, g.next() & 0xffff_ffff);
    let mut rl = Msg::default();
    rl.msg(1, |res| {
        attr(res, 1, "service.name", Val::Str(service));
        attr(res, 1, "host.name", Val::Str(&host));
        attr(res, 1, "telemetry.sdk.language", Val::Str("python"));
        attr(res, 1, "deployment.environment", Val::Str("prod"));
    });
    rl.msg(2, |sl| {
        sl.msg(1, |scope| {
            scope.str(1, LOGGERS[g.below(LOGGERS.len() as u64) as usize]);
        });
        let trace_id = g.bytes(16);
        for i in 0..records {
            let time = base_time + i as u64 * 10_000;
            let (number, text) = SEVERITIES[g.below(SEVERITIES.len() as u64) as usize];
            let route = ROUTES[g.below(ROUTES.len() as u64) as usize];
            let mut r = Msg::default();
            r.fixed64(1, time).uint(2, number).str(3, text);
            r.msg(5, |body| {
                body.str(1, &format!("{route} handled for user {}: {}", g.below(1_000_000), g.text(120)));
            });
            attr(&mut r, 6, "logger.name", Val::Str(LOGGERS[i % LOGGERS.len()]));
            attr(&mut r, 6, "code.function.name", Val::Str(&format!("handle_{}", g.text(8))));
            attr(&mut r, 6, "http.route", Val::Str(route));
            attr(&mut r, 6, "user.id", Val::Int(g.below(1_000_000) as i64));
            if i % 4 != 0 {
                r.fixed32(8, 1).bytes(9, &trace_id).bytes(10, &g.bytes(8));
            }
            r.fixed64(11, time + g.below(1_000_000));
            sl.bytes(2, &r.0);
        }
        sl.str(3, "https://opentelemetry.io/schemas/1.26.0");
    });
    rl.str(3, "https://opentelemetry.io/schemas/1.26.0");
    let mut req = Msg::default();
    req.bytes(1, &rl.0);
    Request { body: req.0, spans: records }
}

fn span(profile: Profile, g: &mut Gen, trace_id: &[u8], start: u64, index: usize) -> Msg {
    let mut m = Msg::default();
    let span_id = g.bytes(8);
    m.bytes(1, trace_id).bytes(2, &span_id);
    if index > 0 {
        m.bytes(4, &g.bytes(8));
    }
    let route = ROUTES[g.below(ROUTES.len() as u64) as usize];
    match profile {
        Profile::Small => {
            m.str(5, &format!("GET {route}"))
                .uint(6, 2)
                .fixed64(7, start)
                .fixed64(8, start + 1000 + g.below(50_000_000));
            attr(&mut m, 9, "http.request.method", Val::Str("GET"));
            attr(&mut m, 9, "http.route", Val::Str(route));
            attr(&mut m, 9, "http.response.status_code", Val::Int(200 + 100 * (g.below(10) == 0) as i64));
            attr(&mut m, 9, "url.path", Val::Str(&format!("{route}/{}", g.below(100_000))));
            attr(&mut m, 9, "url.scheme", Val::Str("https"));
            attr(&mut m, 9, "server.address", Val::Str("api.example.com"));
            attr(&mut m, 9, "server.port", Val::Int(443));
            attr(
                &mut m,
                9,
                "client.address",
                Val::Str(&format!("10.{}.{}.{}", g.below(255), g.below(255), g.below(255))),
            );
            attr(&mut m, 9, "user_agent.original", Val::Str(&g.text(40)));
            attr(&mut m, 9, "network.protocol.version", Val::Str("1.1"));
            if index.is_multiple_of(8) {
                m.msg(11, |e| {
                    e.fixed64(1, start + 500).str(2, "cache.miss");
                    attr(e, 3, "cache.key", Val::Str(&g.text(16)));
                });
            }
            if index.is_multiple_of(16) {
                m.msg(13, |l| {
                    l.bytes(1, &g.bytes(16)).bytes(2, &g.bytes(8));
                });
            }
        }
        Profile::Large => {
            m.str(5, "chat gpt-4o")
                .uint(6, 3)
                .fixed64(7, start)
                .fixed64(8, start + 2_000_000_000 + g.below(1_000_000_000));
            let prompt = format!(
                "[{{\"role\":\"system\",\"content\":\"{}\"}},{{\"role\":\"user\",\"content\":\"{}\"}}]",
                g.text(8_000),
                g.text(42_000)
            );
            let completion = format!("[{{\"role\":\"assistant\",\"content\":\"{}\"}}]", g.text(49_000));
            attr(&mut m, 9, "gen_ai.system", Val::Str("openai"));
            attr(&mut m, 9, "gen_ai.request.model", Val::Str("gpt-4o"));
            attr(&mut m, 9, "gen_ai.usage.input_tokens", Val::Int(g.below(20_000) as i64));
            attr(&mut m, 9, "gen_ai.usage.output_tokens", Val::Int(g.below(4_000) as i64));
            attr(&mut m, 9, "gen_ai.prompt", Val::Str(&prompt));
            attr(&mut m, 9, "gen_ai.completion", Val::Str(&completion));
            m.msg(15, |s| {
                s.uint(3, 1);
            });
        }
        // Not spans: see `logs_request`.
        Profile::Logs => {}
        Profile::Mixed => {
            let payload = 1_000 + g.below(19_000) as usize;
            m.str(5, &format!("{} {}", ["process", "enqueue", "fetch", "render"][index % 4], route))
                .uint(6, 1 + (index % 5) as u64)
                .fixed64(7, start)
                .fixed64(8, start + g.below(100_000_000))
                .str(3, &format!("vendor=t{:x},other=v{}", g.next() & 0xffff, g.below(9)));
            attr(&mut m, 9, "messaging.payload", Val::Str(&g.text(payload)));
            attr(&mut m, 9, "retry", Val::Bool(g.below(2) == 0));
            attr(&mut m, 9, "score", Val::Double(g.below(1000) as f64 / 7.0));
            let tags = [g.text(6), g.text(8), g.text(5)];
            let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
            attr(&mut m, 9, "tags", Val::StrArray(&tag_refs));
            let (a, b) = (g.text(10), g.text(12));
            attr(&mut m, 9, "headers", Val::KvList(&[("content-type", "application/json"), ("x-a", &a), ("x-b", &b)]));
            attr(&mut m, 9, "digest", Val::Bytes(&g.bytes(32)));
            for e in 0..(index % 3) {
                m.msg(11, |ev| {
                    ev.fixed64(1, start + e as u64 * 100).str(2, "log");
                    attr(ev, 3, "message", Val::Str(&g.text(120)));
                });
            }
            m.msg(13, |l| {
                l.bytes(1, &g.bytes(16)).bytes(2, &g.bytes(8)).str(3, "k=v");
            });
            m.msg(15, |s| {
                s.str(2, if index.is_multiple_of(10) { "timeout" } else { "" })
                    .uint(3, if index.is_multiple_of(10) { 2 } else { 0 });
            });
        }
    }
    m
}
