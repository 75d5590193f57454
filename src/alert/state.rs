//! Alert state in the history store (table `alert_state`): each subject's recent outcomes,
//! its flap-controlled state, and what each channel was last told. A transition is only
//! announced once; a channel that could not be told keeps its old value and is told on
//! the next run.
//!
//! Same file, same pragmas and the same `BEGIN IMMEDIATE` discipline as the history store,
//! on its own connection.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::config::{Flap, MAX_RUNS};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_state (
    dedup_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    recent TEXT NOT NULL,
    state TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    pagerduty TEXT,
    slack TEXT,
    updated_ms INTEGER NOT NULL,
    last_error TEXT
);
";

/// A subject's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Ok,
    Failing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ok => "ok",
            Phase::Failing => "failing",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        match s {
            "ok" => Some(Phase::Ok),
            "failing" => Some(Phase::Failing),
            _ => None,
        }
    }
}

/// What to tell a channel this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// PagerDuty `trigger`, Slack "failing".
    Trigger,
    /// PagerDuty `resolve`, Slack "recovered".
    Resolve,
}

impl Action {
    pub fn phase(self) -> Phase {
        match self {
            Action::Trigger => Phase::Failing,
            Action::Resolve => Phase::Ok,
        }
    }
}

/// One subject's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Outcomes of the latest runs, oldest first: `F` failing, `P` passing.
    pub recent: String,
    pub state: Phase,
    pub since_ms: i64,
    /// What PagerDuty / Slack were last told; `None`: nothing yet (or the state was lost).
    pub pagerduty: Option<Phase>,
    pub slack: Option<Phase>,
}

/// One run's outcome into a row: flap control decides the state.
pub fn observe(prev: Option<&Row>, failing: bool, flap: Flap, now_ms: i64) -> Row {
    let mut recent = prev.map(|r| r.recent.clone()).unwrap_or_default();
    recent.push(if failing { 'F' } else { 'P' });
    let max = MAX_RUNS as usize;
    if recent.len() > max {
        recent = recent[recent.len() - max..].to_string();
    }
    let fails = recent
        .chars()
        .rev()
        .take(flap.within_runs as usize)
        .filter(|c| *c == 'F')
        .count() as u32;
    let passes = recent.chars().rev().take_while(|c| *c == 'P').count() as u32;
    let before = prev.map(|r| r.state).unwrap_or(Phase::Ok);
    let state = match before {
        Phase::Ok if fails >= flap.alert_after => Phase::Failing,
        Phase::Failing if passes >= flap.resolve_after => Phase::Ok,
        s => s,
    };
    Row {
        since_ms: match prev {
            Some(p) if p.state == state => p.since_ms,
            _ => now_ms,
        },
        recent,
        state,
        pagerduty: prev.and_then(|r| r.pagerduty),
        slack: prev.and_then(|r| r.slack),
    }
}

/// PagerDuty: tell it whenever it was told something else. With nothing on record (a new
/// or lost store) a passing subject is resolved anyway: the dedup key is deterministic,
/// so this closes an incident a previous, forgotten run opened, and is a no-op otherwise.
pub fn pagerduty_action(told: Option<Phase>, state: Phase) -> Option<Action> {
    match (told, state) {
        (Some(t), s) if t == s => None,
        (_, Phase::Failing) => Some(Action::Trigger),
        (_, Phase::Ok) => Some(Action::Resolve),
    }
}

/// Slack: a message only for a real transition; "recovered" only after a "failing".
pub fn slack_action(told: Option<Phase>, state: Phase) -> Option<Action> {
    match (told, state) {
        (Some(t), s) if t == s => None,
        (_, Phase::Failing) => Some(Action::Trigger),
        (Some(Phase::Failing), Phase::Ok) => Some(Action::Resolve),
        (None, Phase::Ok) => None,
        (Some(Phase::Ok), Phase::Ok) => None,
    }
}

/// A subject observed this run.
#[derive(Debug, Clone)]
pub struct Observation {
    pub key: String,
    pub kind: &'static str,
    pub name: String,
    pub failing: bool,
    pub flap: Flap,
}

/// What this run decided for a subject.
#[derive(Debug, Clone)]
pub struct Planned {
    pub key: String,
    pub row: Row,
    /// The state before this run (`None`: new subject).
    pub before: Option<Phase>,
    pub pagerduty: Option<Action>,
    pub slack: Option<Action>,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens the history store's file (creating the table if needed).
    pub fn open(path: &Path) -> Result<Store, String> {
        let e = |e: rusqlite::Error| format!("alert state in {}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|err| format!("alert state in {}: {err}", path.display()))?;
        }
        let conn = Connection::open(path).map_err(e)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(e)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(e)?;
        conn.execute_batch(SCHEMA).map_err(e)?;
        Ok(Store { conn })
    }

    /// Records this run's outcomes and decides what each channel must be told, in one
    /// transaction. `pagerduty` / `slack`: whether the channel is configured.
    pub fn observe(
        &mut self,
        subjects: &[Observation],
        now_ms: i64,
        pagerduty: bool,
        slack: bool,
    ) -> Result<Vec<Planned>, String> {
        let e = |e: rusqlite::Error| format!("alert state: {e}");
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        let mut out = Vec::new();
        for s in subjects {
            let prev: Option<Row> = tx
                .query_row(
                    "SELECT recent, state, since_ms, pagerduty, slack FROM alert_state WHERE dedup_key = ?1",
                    params![s.key],
                    |r| {
                        Ok(Row {
                            recent: r.get(0)?,
                            state: Phase::parse(&r.get::<_, String>(1)?).unwrap_or(Phase::Ok),
                            since_ms: r.get(2)?,
                            pagerduty: r
                                .get::<_, Option<String>>(3)?
                                .as_deref()
                                .and_then(Phase::parse),
                            slack: r.get::<_, Option<String>>(4)?.as_deref().and_then(Phase::parse),
                        })
                    },
                )
                .optional()
                .map_err(e)?;
            let mut row = observe(prev.as_ref(), s.failing, s.flap, now_ms);
            let pd = pagerduty
                .then(|| pagerduty_action(row.pagerduty, row.state))
                .flatten();
            let sl = slack.then(|| slack_action(row.slack, row.state)).flatten();
            if slack && sl.is_none() && row.slack.is_none() {
                // Nothing was ever said in Slack and all is well: nothing to say.
                row.slack = Some(row.state);
            }
            tx.execute(
                "INSERT INTO alert_state (dedup_key, kind, name, recent, state, since_ms, pagerduty, slack, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(dedup_key) DO UPDATE SET recent = ?4, state = ?5, since_ms = ?6,
                    slack = ?8, updated_ms = ?9",
                params![
                    s.key,
                    s.kind,
                    s.name,
                    row.recent,
                    row.state.as_str(),
                    row.since_ms,
                    row.pagerduty.map(Phase::as_str),
                    row.slack.map(Phase::as_str),
                    now_ms
                ],
            )
            .map_err(e)?;
            out.push(Planned {
                key: s.key.clone(),
                before: prev.as_ref().map(|p| p.state),
                row,
                pagerduty: pd,
                slack: sl,
            });
        }
        tx.commit().map_err(e)?;
        Ok(out)
    }

    /// Records a delivery's outcome: on success the channel now knows `told`.
    pub fn delivered(
        &mut self,
        key: &str,
        channel: &str,
        told: Result<Phase, &str>,
    ) -> Result<(), String> {
        let e = |e: rusqlite::Error| format!("alert state: {e}");
        let column = match channel {
            "pagerduty" => "pagerduty",
            _ => "slack",
        };
        match told {
            Ok(phase) => self
                .conn
                .execute(
                    &format!(
                        "UPDATE alert_state SET {column} = ?2, last_error = NULL WHERE dedup_key = ?1"
                    ),
                    params![key, phase.as_str()],
                )
                .map_err(e)?,
            Err(reason) => self
                .conn
                .execute(
                    "UPDATE alert_state SET last_error = ?2 WHERE dedup_key = ?1",
                    params![key, format!("{channel}: {reason}")],
                )
                .map_err(e)?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F2_3_M2: Flap = Flap {
        alert_after: 2,
        within_runs: 3,
        resolve_after: 2,
    };

    fn run(flap: Flap, outcomes: &str) -> Vec<Phase> {
        let mut row: Option<Row> = None;
        let mut states = Vec::new();
        for (i, c) in outcomes.chars().enumerate() {
            let r = observe(row.as_ref(), c == 'F', flap, i as i64);
            states.push(r.state);
            row = Some(r);
        }
        states
    }

    fn letters(v: &[Phase]) -> String {
        v.iter()
            .map(|p| if *p == Phase::Failing { 'F' } else { '.' })
            .collect()
    }

    #[test]
    fn alert_after_f_of_n_resolve_after_m_in_a_row() {
        // One failure is a blip; two in three runs page.
        assert_eq!(letters(&run(F2_3_M2, "PFPPFPP")), ".......");
        assert_eq!(letters(&run(F2_3_M2, "PFPF")), "...F");
        assert_eq!(letters(&run(F2_3_M2, "FF")), ".F");
        // A single pass does not resolve; two in a row do; failures in between restart it.
        assert_eq!(letters(&run(F2_3_M2, "FFPFPPP")), ".FFFF..");
        let once = Flap {
            alert_after: 1,
            within_runs: 1,
            resolve_after: 1,
        };
        assert_eq!(letters(&run(once, "PFPF")), ".F.F");
    }

    #[test]
    fn since_tracks_the_last_transition() {
        let a = observe(None, true, F2_3_M2, 10);
        let b = observe(Some(&a), true, F2_3_M2, 20);
        let c = observe(Some(&b), true, F2_3_M2, 30);
        assert_eq!((b.state, b.since_ms), (Phase::Failing, 20));
        assert_eq!(c.since_ms, 20);
        let long: String = "P".repeat(200);
        let mut row = None;
        for _ in long.chars() {
            row = Some(observe(row.as_ref(), false, F2_3_M2, 0));
        }
        assert_eq!(row.unwrap().recent.len(), MAX_RUNS as usize);
    }

    #[test]
    fn channels_hear_each_transition_once() {
        use Phase::*;
        assert_eq!(pagerduty_action(Some(Ok), Ok), None);
        assert_eq!(pagerduty_action(Some(Failing), Failing), None);
        assert_eq!(pagerduty_action(Some(Ok), Failing), Some(Action::Trigger));
        assert_eq!(pagerduty_action(Some(Failing), Ok), Some(Action::Resolve));
        // Lost state: resolving is safe (dedup key), triggering is safe (dedup key).
        assert_eq!(pagerduty_action(None, Ok), Some(Action::Resolve));
        assert_eq!(pagerduty_action(None, Failing), Some(Action::Trigger));
        assert_eq!(slack_action(None, Ok), None);
        assert_eq!(slack_action(Some(Ok), Ok), None);
        assert_eq!(slack_action(None, Failing), Some(Action::Trigger));
        assert_eq!(slack_action(Some(Failing), Ok), Some(Action::Resolve));
    }

    #[test]
    fn store_plans_and_remembers() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = Store::open(&dir.path().join("h.sqlite")).unwrap();
        let obs = |failing| {
            vec![Observation {
                key: "k".into(),
                kind: "probe",
                name: "p".into(),
                failing,
                flap: Flap::RULE_DEFAULT,
            }]
        };
        let p = st.observe(&obs(false), 1, true, true).unwrap();
        assert_eq!(p[0].pagerduty, Some(Action::Resolve));
        assert_eq!(p[0].slack, None);
        st.delivered("k", "pagerduty", Ok(Phase::Ok)).unwrap();
        let p = st.observe(&obs(false), 2, true, true).unwrap();
        assert_eq!((p[0].pagerduty, p[0].slack), (None, None));
        let p = st.observe(&obs(true), 3, true, true).unwrap();
        assert_eq!(p[0].pagerduty, Some(Action::Trigger));
        assert_eq!(p[0].slack, Some(Action::Trigger));
        // Slack failed: it is told on the next run; PagerDuty is not told twice.
        st.delivered("k", "pagerduty", Ok(Phase::Failing)).unwrap();
        st.delivered("k", "slack", Err("HTTP 500")).unwrap();
        let p = st.observe(&obs(true), 4, true, true).unwrap();
        assert_eq!((p[0].pagerduty, p[0].slack), (None, Some(Action::Trigger)));
        assert_eq!((p[0].row.since_ms, p[0].before), (3, Some(Phase::Failing)));
    }
}
