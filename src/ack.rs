//! ack: what an export request is owed, and how it is paid. A leaf: every step that holds requests (batch,
//! sinks, pipeline, receiver) imports these types; this module imports none of them.
//!
//! ```text
//!  Budget ──try_acquire──▶ Permit ─┐
//!                                  ├─▶ Pending (in a worker's open output) ─▶ Requests (sealed with the output)
//!  Reply (oneshot to the receiver) ┘        settled once: succeed_all (committed) / fail_all(Failure) (503)
//! ```
//!
//! Contract: every admitted request is answered exactly once. A [`Pending`] answers when settled and, if it is
//! dropped unsettled (a task died), the receiver sees its reply channel close and answers 503: nothing is acked
//! that was not stored. Its [`Permit`] goes back to the [`Budget`] with it.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::decode::{DecodeError, Signal, Summary};

/// A successful export: how many records (spans, log records) were stored, and how many refused alone (partial
/// success).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Records stored (for the self-metrics; not part of the answer).
    pub(crate) records: u64,
    pub(crate) rejected: u64,
    pub(crate) message: Option<String>,
}

impl Accepted {
    /// `records` of `signal` stored and `rejected` refused alone, for these reasons: "N span(s) rejected: why[;
    /// why…]".
    fn rejecting(signal: Signal, records: u64, rejected: u64, reasons: &[Cow<'static, str>]) -> Self {
        let message =
            (!reasons.is_empty()).then(|| format!("{rejected} {} rejected: {}", signal.noun(), reasons.join("; ")));
        Accepted { records, rejected, message }
    }

    /// The answer to a request of `signal` decoded as `s` whose rows need not be stored (it has none).
    pub(crate) fn decoded(signal: Signal, s: Summary) -> Self {
        Accepted::rejecting(signal, s.accepted, s.rejected, s.first_rejection.map(Cow::Borrowed).as_slice())
    }
}

/// Why an export was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ExportError {
    /// The body is not a valid request: the client must not retry.
    #[error("invalid export request: {0}")]
    Invalid(#[source] DecodeError),
    /// Too much accepted data is waiting for its commit: retry later.
    #[error("the collector is at capacity; retry later")]
    Overloaded,
    /// The collector does not take this signal (`--signals`): the client must not retry.
    #[error("this collector does not take {}; it was started without it in --signals", .0.rows())]
    SignalOff(Signal),
    /// Accepted, but storing failed: retry later.
    #[error("the records could not be stored: {0}")]
    Unavailable(Failure),
}

/// Why accepted rows were not stored: one typed error, shared by every request it fails. Its text is the whole
/// source chain (`a: b: c`, so it reports no source of its own), so a client's message and the log name the root
/// cause.
#[derive(Clone)]
pub(crate) struct Failure(Arc<dyn Error + Send + Sync>);

impl Failure {
    pub(crate) fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Failure(Arc::new(error))
    }

    /// A failure inside the collector (storage, a bug), whose details (paths, endpoints) are for the log, not
    /// the client; the collector's own states ([`Stopped`]: shutting down, a deadline) are not.
    pub(crate) fn is_internal(&self) -> bool {
        self.0.downcast_ref::<Stopped>().is_none_or(|s| matches!(s, Stopped::WorkerPanicked))
    }
}

impl Error for Failure {}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(e) = source {
            // Many messages already quote their source: say each cause once.
            let cause = e.to_string();
            if !text.contains(&cause) {
                text = format!("{text}: {cause}");
            }
            source = e.source();
        }
        f.write_str(&text)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Failures that are not another module's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stopped {
    #[error("the collector is shutting down")]
    ShuttingDown,
    #[error("the committer stopped")]
    CommitterGone,
    #[error("the request was dropped before its commit")]
    Dropped,
    #[error("not stored within the request deadline of {0:?}")]
    Deadline(std::time::Duration),
    #[error("a batch worker failed (a bug, logged); retry")]
    WorkerPanicked,
}

/// Where a request's answer goes (the receiver waits on the other end).
pub(crate) type Reply = oneshot::Sender<Result<Accepted, ExportError>>;

/// A request whose rows are in an open or sealed output, waiting to be stored.
pub(crate) struct Pending {
    reply: Reply,
    signal: Signal,
    /// Its records in the output (accepted at decode, less those a worker refused since).
    records: u64,
    /// Records refused alone (at decode, or later by a worker), answered as partial success.
    rejected: u64,
    /// Why, each distinct reason once, first seen first (decode's first reason, then the worker's).
    reasons: Vec<Cow<'static, str>>,
    /// Released when the request is answered.
    _permit: Permit,
}

impl Pending {
    /// A request of `signal` whose records were checked as `summary` says (its rejections are part of its answer).
    pub(crate) fn new(reply: Reply, signal: Signal, summary: &Summary, permit: Permit) -> Self {
        let reasons = summary.first_rejection.map(Cow::Borrowed).into_iter().collect();
        Pending { reply, signal, records: summary.accepted, rejected: summary.rejected, reasons, _permit: permit }
    }

    /// `n` more of its records are refused alone, for `reason`: rows left out of the output because they can never
    /// be stored. Its answer stays a success, counting them as rejected (the client must not retry them).
    pub(crate) fn reject(&mut self, n: u64, reason: impl Into<Cow<'static, str>>) {
        let reason = reason.into();
        self.rejected += n;
        self.records = self.records.saturating_sub(n);
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// Its answer once its rows are stored.
    fn accepted(&self) -> Accepted {
        Accepted::rejecting(self.signal, self.records, self.rejected, &self.reasons)
    }
}

/// The requests whose rows one output holds: settled together, by one call, when the output is stored or lost.
#[derive(Default)]
#[must_use = "requests must be settled: succeed_all or fail_all"]
pub(crate) struct Requests(Vec<Pending>);

impl Requests {
    pub(crate) fn push(&mut self, pending: Pending) {
        self.0.push(pending);
    }

    /// Add `other`'s requests to these (settled together from now on).
    pub(crate) fn extend(&mut self, other: Requests) {
        self.0.extend(other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Records their rows hold (what the exporter self-metrics count when these are settled).
    pub(crate) fn records(&self) -> u64 {
        self.0.iter().map(|p| p.records).sum()
    }

    /// The `index`th request (in the order pushed).
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Pending> {
        self.0.get_mut(index)
    }

    /// Take every request out, leaving this empty (a worker hands its requests over with its sealed output).
    pub(crate) fn take(&mut self) -> Requests {
        Requests(std::mem::take(&mut self.0))
    }

    /// Their rows are stored: answer each with its partial-success summary.
    pub(crate) fn succeed_all(self) {
        for p in self.0 {
            let accepted = p.accepted();
            let _ = p.reply.send(Ok(accepted));
        }
    }

    /// Their rows were not stored: answer each "unavailable" (retryable) with this reason.
    pub(crate) fn fail_all(self, reason: Failure) {
        for p in self.0 {
            let _ = p.reply.send(Err(ExportError::Unavailable(reason.clone())));
        }
    }
}

/// Byte budget for accepted-but-unacknowledged requests, shared by the pipelines of several signals ("lanes").
/// A [`Budget`] is one lane's handle on it.
///
/// No lane starves another: with `n` lanes, each is guaranteed a floor of `limit / 2n` bytes. A lane may take
/// more only while what the other lanes hold, each counted as at least its floor, leaves room for it:
/// `max(own + bytes, floor) + Σ others max(held, floor) ≤ limit`. So one busy signal can fill all but the other
/// lanes' floors, and a request of a quiet signal that fits its floor is admitted however busy the others are.
/// With one lane there is no floor: all of the budget is its own.
#[derive(Clone)]
pub(crate) struct Budget {
    shared: Arc<Shared>,
    lane: usize,
}

struct Shared {
    limit: u64,
    /// Each lane's guaranteed share.
    floor: u64,
    held: Mutex<Vec<u64>>,
}

impl Shared {
    /// Per-lane bytes held. A poisoned lock (a panic between two statements that cannot panic) still holds
    /// counts that add up.
    fn held(&self) -> MutexGuard<'_, Vec<u64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes `lane` may still take: the limit less the other lanes' holdings (each at least its floor) and its
    /// own.
    fn room(&self, held: &[u64], lane: usize) -> u64 {
        let others: u64 = held.iter().enumerate().filter(|&(i, _)| i != lane).map(|(_, &h)| h.max(self.floor)).sum();
        self.limit.saturating_sub(others).saturating_sub(held[lane])
    }
}

/// A share of the [`Budget`], given back on drop.
pub(crate) struct Permit {
    budget: Budget,
    bytes: u64,
}

impl Budget {
    /// A budget of `limit` bytes with a single lane.
    #[cfg(test)]
    pub(crate) fn new(limit: u64) -> Self {
        Budget::shared(limit, 1).remove(0)
    }

    /// A budget of `limit` bytes shared by `lanes` lanes (at least one): one handle per lane.
    pub(crate) fn shared(limit: u64, lanes: usize) -> Vec<Budget> {
        let lanes = lanes.max(1);
        let floor = if lanes > 1 { limit / (2 * lanes as u64) } else { 0 };
        let shared = Arc::new(Shared { limit, floor, held: Mutex::new(vec![0; lanes]) });
        (0..lanes).map(|lane| Budget { shared: shared.clone(), lane }).collect()
    }

    /// Take `bytes` for this lane, or `None` if they are not available to it.
    pub(crate) fn try_acquire(&self, bytes: u64) -> Option<Permit> {
        let mut held = self.shared.held();
        if bytes > self.shared.room(&held, self.lane) {
            return None;
        }
        held[self.lane] += bytes;
        Some(Permit { budget: self.clone(), bytes })
    }

    /// Most bytes that may be taken, all lanes together.
    pub(crate) fn limit(&self) -> u64 {
        self.shared.limit
    }

    /// Bytes this lane may still take.
    pub(crate) fn available(&self) -> u64 {
        let held = self.shared.held();
        self.shared.room(&held, self.lane)
    }

    /// Bytes taken, all lanes together.
    pub(crate) fn used(&self) -> u64 {
        self.shared.held().iter().sum()
    }

    /// Bytes this lane holds.
    #[cfg(test)]
    fn lane_used(&self) -> u64 {
        self.shared.held()[self.lane]
    }
}

impl Permit {
    /// Hold exactly `bytes` from now on: less is given back at once, more is taken only if the budget has it.
    pub(crate) fn try_resize(&mut self, bytes: u64) -> bool {
        let shared = &self.budget.shared;
        let lane = self.budget.lane;
        let mut held = shared.held();
        if bytes > self.bytes && bytes - self.bytes > shared.room(&held, lane) {
            return false;
        }
        held[lane] = held[lane].saturating_sub(self.bytes) + bytes;
        self.bytes = bytes;
        true
    }

    /// The bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Take `extra` more bytes for this request: what it became is larger than what it was. Checked against
    /// [`Budget::available`] by the caller beforehand; two workers racing may overshoot the limit by one request's
    /// growth each, never more.
    pub(crate) fn grow(&mut self, extra: u64) {
        let mut held = self.budget.shared.held();
        held[self.budget.lane] += extra;
        self.bytes += extra;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.budget.shared.held();
        let lane = &mut held[self.budget.lane];
        *lane = lane.saturating_sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_beyond_its_limit_and_returns_on_drop() {
        let budget = Budget::new(100);
        let a = budget.try_acquire(60).unwrap();
        assert!(budget.try_acquire(41).is_none());
        let b = budget.try_acquire(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.try_acquire(u64::MAX).is_none());
        let mut c = budget.try_acquire(10).unwrap();
        c.grow(50);
        assert_eq!((budget.used(), budget.available()), (60, 40));
        drop(c);
        assert_eq!(budget.used(), 0, "a grown permit gives all of it back");
        let mut d = budget.try_acquire(10).unwrap();
        assert!(d.try_resize(100));
        assert!(!d.try_resize(101), "not beyond the limit");
        assert!(d.try_resize(5));
        assert_eq!(budget.used(), 5);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn requests_settle_together_and_failures_name_their_sources() {
        let budget = Budget::new(10);
        let mut requests = Requests::default();
        let mut answers = Vec::new();
        for _ in 0..2 {
            let (reply, answer) = oneshot::channel();
            requests.push(Pending::new(reply, Signal::Traces, &Summary::default(), budget.try_acquire(5).unwrap()));
            answers.push(answer);
        }
        assert!(budget.try_acquire(1).is_none());
        requests.fail_all(Failure::new(Outer(std::io::Error::other("inner"))));
        for mut answer in answers {
            match answer.try_recv().unwrap() {
                Err(ExportError::Unavailable(reason)) => assert_eq!(reason.to_string(), "outer: inner"),
                other => panic!("{other:?}"),
            }
        }
        assert!(budget.try_acquire(10).is_some(), "permits are given back once answered");
    }

    #[test]
    fn rejections_add_up_and_name_each_reason_once() {
        let budget = Budget::new(10);
        let decoded = Summary { accepted: 3, rejected: 2, first_rejection: Some("trace_id must be 16 bytes") };
        let (reply, mut mixed) = oneshot::channel();
        let mut both = Pending::new(reply, Signal::Traces, &decoded, budget.try_acquire(1).unwrap());
        both.reject(1, "too large");
        both.reject(2, String::from("too large"));
        let (reply, mut clean) = oneshot::channel();
        let mut only = Pending::new(
            reply,
            Signal::Traces,
            &Summary { accepted: 1, ..Summary::default() },
            budget.try_acquire(1).unwrap(),
        );
        only.reject(1, "too large");
        let (reply, mut untouched) = oneshot::channel();
        let none = Pending::new(reply, Signal::Traces, &decoded, budget.try_acquire(1).unwrap());
        let mut requests = Requests::default();
        for p in [both, only, none] {
            requests.push(p);
        }
        assert_eq!(requests.records(), 3, "only the untouched request's spans are still in the output");
        requests.succeed_all();
        let message =
            |records: u64, rejected: u64, m: &str| Accepted { records, rejected, message: Some(m.to_owned()) };
        assert_eq!(
            mixed.try_recv().unwrap().unwrap(),
            message(0, 5, "5 span(s) rejected: trace_id must be 16 bytes; too large")
        );
        assert_eq!(clean.try_recv().unwrap().unwrap(), message(0, 1, "1 span(s) rejected: too large"));
        assert_eq!(
            untouched.try_recv().unwrap().unwrap(),
            Accepted::decoded(Signal::Traces, decoded),
            "as decode answered it"
        );
        assert_eq!(
            Accepted::decoded(Signal::Traces, decoded),
            message(3, 2, "2 span(s) rejected: trace_id must be 16 bytes")
        );
    }

    #[test]
    fn a_busy_lane_leaves_every_other_lane_its_floor() {
        // 3 lanes of 600 bytes: a floor of 100 each.
        let lanes = Budget::shared(600, 3);
        let (traces, logs, metrics) = (&lanes[0], &lanes[1], &lanes[2]);
        let mut flood = Vec::new();
        while let Some(p) = traces.try_acquire(10) {
            flood.push(p);
        }
        assert_eq!(traces.lane_used(), 400, "all but the two other floors");
        let log = logs.try_acquire(100).expect("a quiet lane gets its floor however busy the others are");
        assert!(logs.try_acquire(1).is_none(), "beyond its floor only with room left");
        let point = metrics.try_acquire(100).expect("so does the third");
        assert_eq!(traces.used(), 600);
        drop(flood);
        assert_eq!(logs.available(), 300, "once the flood is answered, all but the traces' floor is anyone's");
        let mut grown = logs.try_acquire(300).unwrap();
        assert!(traces.try_acquire(101).is_none());
        let floor = traces.try_acquire(100).expect("the lane that flooded keeps its floor too");
        assert!(!grown.try_resize(301), "resizing obeys the same rule");
        drop((log, point, floor));
        assert!(!grown.try_resize(401), "not into the floors of the two idle lanes");
        assert!(grown.try_resize(400), "600 less the traces' and the metrics' floors");
    }

    #[test]
    fn one_lane_has_the_whole_budget() {
        let budget = Budget::new(100);
        let all = budget.try_acquire(100).unwrap();
        assert_eq!((budget.used(), budget.available()), (100, 0));
        drop(all);
    }
}
