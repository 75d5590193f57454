//! Per-step and per-probe figures collected by the runner.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track exactly: an hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;
/// Distinct failure reasons kept per step; more are counted under "other".
const MAX_REASONS: usize = 16;

/// What kind of trouble a failed step had: it decides where to look first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Connection refused or reset, DNS, TLS.
    Network,
    /// No answer within the request timeout.
    Timeout,
    /// The run's deadline ended the step.
    Deadline,
    /// A token could not be signed or obtained.
    Credential,
    /// The response did not satisfy `expect`.
    Assertion,
    /// `poll` ran out of time before `until` held.
    Poll,
    /// A value to capture was missing.
    Capture,
    /// Signed data did not verify.
    Signature,
    /// While polling, the server reported the awaited outcome as failed (`fail_if`).
    Rejected,
    /// The response body was too large or unreadable.
    Body,
    /// A template variable had no value.
    Template,
}

pub fn new_histogram() -> Histogram<u64> {
    // Bounds and precision are fixed, so memory is too (about 40 KiB per step).
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

#[derive(Debug, Clone)]
pub struct StepStats {
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub failed: u64,
    /// Not run because an earlier step failed.
    pub skipped: u64,
    pub retries: u64,
    /// reason -> (count, kind); bounded.
    pub reasons: BTreeMap<String, (u64, FailureKind)>,
    pub last_status: Option<u16>,
}

impl Default for StepStats {
    fn default() -> Self {
        StepStats {
            latency: new_histogram(),
            ok: 0,
            failed: 0,
            skipped: 0,
            retries: 0,
            reasons: BTreeMap::new(),
            last_status: None,
        }
    }
}

impl StepStats {
    pub fn record_latency(&mut self, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, MAX_MICROS);
        self.latency.saturating_record(micros);
    }

    pub fn record_failure(&mut self, kind: FailureKind, reason: &str) {
        self.failed += 1;
        if let Some(e) = self.reasons.get_mut(reason) {
            e.0 += 1;
        } else if self.reasons.len() < MAX_REASONS {
            self.reasons.insert(reason.to_string(), (1, kind));
        } else {
            self.reasons
                .entry("(other reasons)".into())
                .or_insert((0, kind))
                .0 += 1;
        }
    }

    pub fn attempts(&self) -> u64 {
        self.ok + self.failed
    }

    /// ok / (ok + failed); `None` before any attempt.
    pub fn success_ratio(&self) -> Option<f64> {
        let n = self.attempts();
        (n > 0).then(|| self.ok as f64 / n as f64)
    }

    /// The most frequent failure reason.
    pub fn top_reason(&self) -> Option<(&str, FailureKind)> {
        self.reasons
            .iter()
            .max_by_key(|(_, (n, _))| *n)
            .map(|(r, (_, k))| (r.as_str(), *k))
    }

    pub fn quantile(&self, q: f64) -> Option<Duration> {
        (!self.latency.is_empty()).then(|| Duration::from_micros(self.latency.value_at_quantile(q)))
    }

    pub fn max(&self) -> Option<Duration> {
        (!self.latency.is_empty()).then(|| Duration::from_micros(self.latency.max()))
    }

    pub fn merge(&mut self, other: &StepStats) {
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.retries += other.retries;
        for (r, (n, k)) in &other.reasons {
            for _ in 0..*n {
                self.record_failure(*k, r);
                self.failed -= 1;
            }
        }
        if other.last_status.is_some() {
            self.last_status = other.last_status;
        }
    }
}

/// A recorded numeric figure (e.g. the cache hit ratio) over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ValueStats {
    pub count: u64,
    pub last: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl ValueStats {
    pub fn new(v: f64) -> Self {
        ValueStats {
            count: 1,
            last: v,
            min: v,
            max: v,
            mean: v,
        }
    }

    pub fn add(&mut self, other: &ValueStats) {
        let n = self.count + other.count;
        self.mean = (self.mean * self.count as f64 + other.mean * other.count as f64) / n as f64;
        self.count = n;
        self.last = other.last;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// Figures for one probe: its steps (credential steps first) and whole iterations.
#[derive(Debug, Clone, Default)]
pub struct ProbeStats {
    pub steps: Vec<StepStats>,
    /// Whole-iteration durations (purchase completion time).
    pub total: StepStats,
    /// Recorded figures by name.
    pub values: BTreeMap<String, ValueStats>,
}

impl ProbeStats {
    pub fn new(steps: usize) -> Self {
        ProbeStats {
            steps: vec![StepStats::default(); steps],
            total: StepStats::default(),
            values: BTreeMap::new(),
        }
    }

    pub fn record_value(&mut self, name: &str, v: f64) {
        let s = ValueStats::new(v);
        match self.values.get_mut(name) {
            Some(e) => e.add(&s),
            None => {
                self.values.insert(name.to_string(), s);
            }
        }
    }

    pub fn merge(&mut self, other: &ProbeStats) {
        for (a, b) in self.steps.iter_mut().zip(&other.steps) {
            a.merge(b);
        }
        self.total.merge(&other.total);
        for (k, v) in &other.values {
            match self.values.get_mut(k) {
                Some(e) => e.add(v),
                None => {
                    self.values.insert(k.clone(), *v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_fixed_whatever_the_samples() {
        let mut s = StepStats::default();
        let before = s.latency.len();
        let buckets = s.latency.distinct_values();
        for i in 0..100_000u64 {
            s.record_latency(Duration::from_micros(1 + i * 37));
        }
        assert_eq!(s.latency.len(), before + 100_000);
        assert_eq!(s.latency.distinct_values(), buckets);
        assert_eq!(s.ok, 0);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = StepStats::default();
        let mut b = StepStats::default();
        a.record_latency(Duration::from_millis(10));
        a.ok = 1;
        b.record_latency(Duration::from_millis(30));
        b.record_failure(FailureKind::Timeout, "timeout after 10 s");
        a.merge(&b);
        assert_eq!((a.ok, a.failed, a.latency.len()), (1, 1, 2));
        assert_eq!(a.top_reason().unwrap().1, FailureKind::Timeout);
        let p99 = a.quantile(0.99).unwrap().as_millis();
        assert!((29..=31).contains(&p99), "{p99}");
    }

    #[test]
    fn reasons_are_bounded() {
        let mut s = StepStats::default();
        for i in 0..100 {
            s.record_failure(FailureKind::Assertion, &format!("reason {i}"));
        }
        assert_eq!(s.failed, 100);
        assert_eq!(s.reasons.len(), MAX_REASONS + 1);
    }
}
