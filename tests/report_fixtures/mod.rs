//! Hand-built, deterministic run outcomes for the report tests (`report_snapshots`,
//! `report_schema`): fixed probes, fixed run id and start time, known latencies recorded
//! into the same histograms the runner uses. Nothing here touches the network or a clock.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use iap_probe::config::SloTargets;
use iap_probe::probe::{DEFAULT_BUILTINS, Probe, load_str};
use iap_probe::report::{self, Report};
use iap_probe::runner::{FirstFailure, ProbeRun, RunOutcome, plan};
use iap_probe::slo::{FailureKind, ProbeStats, StepStats};

/// Like the shipped `ios-purchase`, frozen here so that editing `probes/` does not move
/// these snapshots.
const IOS_PURCHASE: &str = r#"
name = "ios-purchase"
platform = "ios"
tags = ["purchase"]

[[step]]
name = "health"
request = { url = "{{backend}}/iap/health" }
expect = { status = 200, json = { "$.status" = "ok" } }
slo = { p99 = "1s" }

[[step]]
name = "apple-transaction"
auth = "app-store"
request = { url = "{{apple}}/inApps/v1/transactions/{{fixture.transaction_id}}" }
expect = { status = 200 }
capture = { signed = "$.signedTransactionInfo" }
verify_jws = "signed"
slo = { p99 = "2s" }

[[step]]
name = "verify"
request = { method = "POST", url = "{{backend}}/iap/verify", json = { userId = "{{user}}" } }
expect = { status = 200, json = { "$.valid" = true } }
slo = { p99 = "2s", critical = "10s" }

[[step]]
name = "entitlement"
auth = "admin"
request = { url = "{{backend}}/iap/user/{{user}}/entitlements" }
poll = { every = "500ms", within = "60s" }
until = { status = 200, json = { "$.entitlements[*].productId" = { contains = "{{fixture.product_id}}" } } }
slo = { p99 = "60s" }
"#;

const ANDROID_PURCHASE: &str = r#"
name = "android-purchase"
platform = "android"
tags = ["purchase"]

[[step]]
name = "health"
request = { url = "{{backend}}/iap/health" }
expect = { status = 200 }
slo = { p99 = "1s" }

[[step]]
name = "play-purchase"
auth = "google-play"
request = { url = "{{google}}/androidpublisher/v3/applications/{{package_name}}/purchases/products/{{fixture.product_id}}/tokens/{{fixture.purchase_token}}" }
expect = { status = 200, json = { "$.purchaseState" = 0 } }
slo = { p99 = "2s" }

[[step]]
name = "verify"
request = { method = "POST", url = "{{backend}}/iap/verify", json = { userId = "{{user}}" } }
expect = { status = 200, json = { "$.valid" = true } }
slo = { p99 = "2s", critical = "10s" }

[[step]]
name = "entitlement"
auth = "admin"
request = { url = "{{backend}}/iap/user/{{user}}/entitlements" }
poll = { every = "500ms", within = "60s" }
until = { status = 200, json = { "$.entitlements[*].productId" = { contains = "{{fixture.product_id}}" } } }
slo = { p99 = "60s" }
"#;

const HEALTH: &str = r#"
name = "health"
platform = "any"

[[step]]
name = "health"
request = { url = "{{backend}}/iap/health" }
expect = { status = 200, json = { "$.status" = "ok" } }
slo = { p99 = "1s", critical = "5s" }
"#;

const VERIFY_503: &str = r#"HTTP 503 {"error":"injected fault: HTTP 503"} (status 503, expected 200; $.valid is missing, expected true)"#;

pub fn probe(src: &str) -> Probe {
    load_str(src, Path::new("<fixture>"), DEFAULT_BUILTINS).expect("fixture probe is valid")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// A probe run whose per-step figures are filled in by `fill`, indexed like
/// `runner::plan` (credential steps first).
fn probe_run(
    src: &str,
    fill: impl FnOnce(&mut ProbeStats),
    first: Option<FirstFailure>,
) -> ProbeRun {
    let probe = probe(src);
    let steps = plan(&probe);
    let mut stats = ProbeStats::new(steps.len());
    fill(&mut stats);
    ProbeRun {
        probe,
        steps,
        stats,
        first_failure: first,
    }
}

fn ok(s: &mut StepStats, latency: Duration, status: Option<u16>) {
    s.ok += 1;
    s.record_latency(latency);
    if status.is_some() {
        s.last_status = status;
    }
}

/// ios-purchase, one iteration, every step well within its SLO.
pub fn ios_pass() -> ProbeRun {
    probe_run(
        IOS_PURCHASE,
        |st| {
            // app-store-jwt, health, apple-transaction, verify, entitlement
            ok(&mut st.steps[0], us(6_480), None);
            ok(&mut st.steps[1], us(5_740), Some(200));
            ok(&mut st.steps[2], us(6_200), Some(200));
            ok(&mut st.steps[3], ms(27), Some(200));
            ok(&mut st.steps[4], us(1_710), Some(200));
            ok(&mut st.total, ms(49), None);
        },
        None,
    )
}

/// android-purchase, one iteration: the Google token could not be obtained, so nothing
/// after it ran.
pub fn android_credential_fail() -> ProbeRun {
    let reason =
        "token endpoint https://oauth2.googleapis.com/token: invalid_grant: Invalid JWT Signature.";
    probe_run(
        ANDROID_PURCHASE,
        |st| {
            // google-token, health, play-purchase, verify, entitlement
            st.steps[0].record_failure(FailureKind::Credential, reason);
            for s in &mut st.steps[1..] {
                s.skipped += 1;
            }
            st.total.record_failure(FailureKind::Credential, reason);
        },
        Some(FirstFailure {
            step: 0,
            kind: FailureKind::Credential,
            reason: reason.into(),
            status: None,
        }),
    )
}

/// health, one iteration, 850 ms against a 1 s p99 target: over 80% of the budget.
pub fn health_warn() -> ProbeRun {
    probe_run(
        HEALTH,
        |st| {
            ok(&mut st.steps[0], ms(850), Some(200));
            ok(&mut st.total, ms(851), None);
        },
        None,
    )
}

/// ios-purchase in sampling mode, 200 iterations: verify answers 503 four times and
/// times out twice (the timeouts break the 10 s critical bound), one entitlement never
/// appears; 193 of 200 complete (96.5%: under the 99% target, above the 95% floor).
pub fn ios_sampling_mixed() -> ProbeRun {
    probe_run(
        IOS_PURCHASE,
        |st| {
            let (jwt, health, tx, verify, ent) = match &mut st.steps[..] {
                [a, b, c, d, e] => (a, b, c, d, e),
                _ => unreachable!("ios-purchase plans five steps"),
            };
            for i in 0..200u64 {
                // The JWT is signed once and reused.
                ok(jwt, if i == 0 { us(6_480) } else { us(12) }, None);
                ok(health, us(2_000 + (i % 50) * 120), Some(200));
                ok(tx, us(4_000 + (i % 40) * 250), Some(200));
                match i {
                    17 | 61 | 105 | 149 => {
                        verify.record_failure(FailureKind::Assertion, VERIFY_503);
                        verify.record_latency(us(900 + i));
                        verify.last_status = Some(503);
                        ent.skipped += 1;
                        st.total.record_failure(FailureKind::Assertion, VERIFY_503);
                    }
                    88 | 177 => {
                        verify.record_failure(FailureKind::Timeout, "timeout after 10 s");
                        verify.record_latency(ms(10_040));
                        ent.skipped += 1;
                        st.total
                            .record_failure(FailureKind::Timeout, "timeout after 10 s");
                    }
                    _ => {
                        ok(verify, ms(20 + (i % 60) * 3), Some(200));
                        if i == 42 {
                            let reason = "not satisfied within 60 s (121 polls; last: $.entitlements[*].productId matched nothing, expected an element equal to \"com.example.premium.monthly\")";
                            ent.record_failure(FailureKind::Poll, reason);
                            ent.record_latency(ms(60_000));
                            st.total.record_failure(FailureKind::Poll, reason);
                        } else {
                            ok(ent, ms(1 + (i % 7) * 500), Some(200));
                            ok(&mut st.total, ms(40 + (i % 60) * 3 + (i % 7) * 500), None);
                        }
                    }
                }
            }
            tx.retries = 1;
        },
        Some(FirstFailure {
            step: 3,
            kind: FailureKind::Assertion,
            reason: VERIFY_503.into(),
            status: Some(503),
        }),
    )
}

/// health cut short by the run deadline.
pub fn health_deadline() -> ProbeRun {
    probe_run(
        HEALTH,
        |st| {
            st.steps[0].record_failure(
                FailureKind::Deadline,
                "run deadline reached before this request",
            );
            st.total.record_failure(
                FailureKind::Deadline,
                "run deadline reached before this request",
            );
        },
        Some(FirstFailure {
            step: 0,
            kind: FailureKind::Deadline,
            reason: "run deadline reached before this request".into(),
            status: None,
        }),
    )
}

/// A run of `probes` with a fixed id, start and duration.
pub fn outcome(probes: Vec<ProbeRun>) -> RunOutcome {
    RunOutcome {
        run_id: "6925d2c0a1b2".into(),
        // 2025-11-25T16:00:00.250Z
        started: UNIX_EPOCH + Duration::from_millis(1_764_086_400_250),
        elapsed: ms(4_321),
        deadline: Duration::from_secs(120),
        deadline_hit: false,
        probes,
    }
}

pub fn build(outcome: &RunOutcome) -> Report {
    report::build(outcome, "sandbox", &SloTargets::default())
}

/// Every probe passed.
pub fn all_pass() -> Report {
    build(&outcome(vec![ios_pass()]))
}

/// A one-shot run: a pass, a credential failure and a latency warning.
pub fn one_shot() -> Report {
    build(&outcome(vec![
        ios_pass(),
        android_credential_fail(),
        health_warn(),
    ]))
}

/// A sampling run (`--iterations 200`) with mixed failures.
pub fn sampling() -> Report {
    let mut o = outcome(vec![ios_sampling_mixed()]);
    o.elapsed = Duration::from_secs(97);
    o.deadline = Duration::from_secs(600);
    build(&o)
}

/// The run deadline was reached.
pub fn deadline() -> Report {
    let mut o = outcome(vec![health_deadline()]);
    o.elapsed = Duration::from_secs(2);
    o.deadline = Duration::from_secs(2);
    o.deadline_hit = true;
    build(&o)
}
