//! The SQLite store: schema, writes (one transaction per run) and window queries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::report::Report;
use crate::slo::stats::new_histogram;

#[derive(Debug, thiserror::Error)]
#[error("history store {path}: {reason}")]
pub struct HistoryError {
    pub path: PathBuf,
    pub reason: String,
}

pub struct History {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    environment TEXT NOT NULL,
    verdict TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    incident_type TEXT,
    severity TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_ms);
CREATE TABLE IF NOT EXISTS probe_runs (
    run INTEGER NOT NULL,
    probe TEXT NOT NULL,
    platform TEXT NOT NULL,
    purchase INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    iterations INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS probe_runs_run ON probe_runs(run);
CREATE TABLE IF NOT EXISTS step_runs (
    run INTEGER NOT NULL,
    probe TEXT NOT NULL,
    step TEXT NOT NULL,
    target TEXT NOT NULL,
    verdict TEXT NOT NULL,
    ok INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    histogram BLOB
);
CREATE INDEX IF NOT EXISTS step_runs_run ON step_runs(run);
CREATE TABLE IF NOT EXISTS recorded_values (
    run INTEGER NOT NULL,
    probe TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recorded_values_run ON recorded_values(run);
";

fn serialize(h: &Histogram<u64>) -> Vec<u8> {
    let mut buf = Vec::new();
    // A histogram that cannot be serialised is stored empty rather than failing the run.
    let _ = V2Serializer::new().serialize(h, &mut buf);
    buf
}

fn deserialize(bytes: &[u8]) -> Option<Histogram<u64>> {
    Deserializer::new().deserialize(&mut &bytes[..]).ok()
}

/// Figures of one probe over a window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeWindow {
    pub probe: String,
    pub platform: String,
    pub runs: u64,
    pub iterations: u64,
    pub successes: u64,
    pub success_ratio: Option<f64>,
    pub steps: Vec<StepWindow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepWindow {
    pub step: String,
    pub ok: u64,
    pub failed: u64,
    pub samples: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowSummary {
    pub window_seconds: u64,
    pub runs: u64,
    pub probes: Vec<ProbeWindow>,
}

impl History {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let err = |e: rusqlite::Error| HistoryError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| HistoryError {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(History {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: rusqlite::Error) -> HistoryError {
        HistoryError {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Records a run and prunes rows older than `retention`, in one transaction.
    pub fn record(
        &mut self,
        report: &Report,
        started_ms: i64,
        retention: Duration,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| HistoryError {
            path: path.clone(),
            reason: e.to_string(),
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            "INSERT INTO runs (run_id, started_ms, environment, verdict, duration_ms, incident_type, severity)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                report.run_id,
                started_ms,
                report.environment,
                report.verdict.as_str(),
                (report.duration_seconds * 1000.0) as i64,
                report.incident.as_ref().map(|i| i.kind),
                report.incident.as_ref().map(|i| i.severity),
            ],
        )
        .map_err(err)?;
        let run = tx.last_insert_rowid();
        for p in &report.probes {
            tx.execute(
                "INSERT INTO probe_runs (run, probe, platform, purchase, verdict, iterations, successes, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    run,
                    p.name,
                    p.platform,
                    p.purchase,
                    p.verdict.as_str(),
                    p.iterations as i64,
                    p.successes as i64,
                    p.reason,
                ],
            )
            .map_err(err)?;
            for s in &p.steps {
                tx.execute(
                    "INSERT INTO step_runs (run, probe, step, target, verdict, ok, failed, histogram)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        run,
                        p.name,
                        s.name,
                        s.target,
                        s.verdict.as_str(),
                        s.ok as i64,
                        s.failed as i64,
                        serialize(&s.histogram),
                    ],
                )
                .map_err(err)?;
            }
            for (name, v) in &p.values {
                tx.execute(
                    "INSERT INTO recorded_values (run, probe, name, value) VALUES (?1, ?2, ?3, ?4)",
                    params![run, p.name, name, v.last],
                )
                .map_err(err)?;
            }
        }
        let cutoff = started_ms - retention.as_millis() as i64;
        for table in ["probe_runs", "step_runs", "recorded_values"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE run IN (SELECT id FROM runs WHERE started_ms < ?1)"
                ),
                params![cutoff],
            )
            .map_err(err)?;
        }
        tx.execute("DELETE FROM runs WHERE started_ms < ?1", params![cutoff])
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// (successes, iterations) of purchase probes since `since_ms`.
    pub fn purchase_counts(&self, since_ms: i64) -> Result<(u64, u64), HistoryError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(p.successes), 0), COALESCE(SUM(p.iterations), 0)
                 FROM probe_runs p JOIN runs r ON r.id = p.run
                 WHERE p.purchase = 1 AND r.started_ms >= ?1",
                params![since_ms],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.err(e))
    }

    /// (ok, failed) over every step since `since_ms`.
    pub fn step_counts(&self, since_ms: i64) -> Result<(u64, u64), HistoryError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(s.ok), 0), COALESCE(SUM(s.failed), 0)
                 FROM step_runs s JOIN runs r ON r.id = s.run WHERE r.started_ms >= ?1",
                params![since_ms],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.err(e))
    }

    /// The merged histogram of every step named `step` (any probe) since `since_ms`.
    pub fn merged_step(
        &self,
        step: &str,
        probe: Option<&str>,
        since_ms: i64,
    ) -> Result<Histogram<u64>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.histogram FROM step_runs s JOIN runs r ON r.id = s.run
                 WHERE s.step = ?1 AND (?2 IS NULL OR s.probe = ?2) AND r.started_ms >= ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![step, probe, since_ms], |row| {
                row.get::<_, Option<Vec<u8>>>(0)
            })
            .map_err(|e| self.err(e))?;
        let mut merged = new_histogram();
        for r in rows {
            if let Some(h) = r.map_err(|e| self.err(e))?.as_deref().and_then(deserialize) {
                let _ = merged.add(&h);
            }
        }
        Ok(merged)
    }

    /// Mean of a recorded value since `since_ms`, with the number of samples.
    pub fn value_mean(
        &self,
        name: &str,
        since_ms: i64,
    ) -> Result<(Option<f64>, u64), HistoryError> {
        self.conn
            .query_row(
                "SELECT AVG(v.value), COUNT(*) FROM recorded_values v JOIN runs r ON r.id = v.run
                 WHERE v.name = ?1 AND r.started_ms >= ?2",
                params![name, since_ms],
                |row| Ok((row.get::<_, Option<f64>>(0)?, row.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.err(e))
    }

    /// Severity of the latest run's incident, if any.
    pub fn latest_incident(&self) -> Result<Option<(String, String)>, HistoryError> {
        self.conn
            .query_row(
                "SELECT incident_type, severity FROM runs ORDER BY started_ms DESC, id DESC LIMIT 1",
                [],
                |row| Ok((row.get::<_, Option<String>>(0)?, row.get::<_, Option<String>>(1)?)),
            )
            .optional()
            .map(|r| r.and_then(|(t, s)| t.zip(s)))
            .map_err(|e| self.err(e))
    }

    /// `probe history`: runs, success ratios and merged percentiles over a window.
    pub fn summary(
        &self,
        since_ms: i64,
        window: Duration,
        probe: Option<&str>,
    ) -> Result<WindowSummary, HistoryError> {
        let runs: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE started_ms >= ?1",
                params![since_ms],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.probe, p.platform, COUNT(*), SUM(p.iterations), SUM(p.successes)
                 FROM probe_runs p JOIN runs r ON r.id = p.run
                 WHERE r.started_ms >= ?1 AND (?2 IS NULL OR p.probe = ?2)
                 GROUP BY p.probe, p.platform ORDER BY p.probe",
            )
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, String, i64, i64, i64)> = stmt
            .query_map(params![since_ms, probe], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let mut probes = Vec::new();
        for (name, platform, n, iterations, successes) in rows {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT s.step, SUM(s.ok), SUM(s.failed), MIN(s.rowid) FROM step_runs s JOIN runs r ON r.id = s.run
                     WHERE s.probe = ?1 AND r.started_ms >= ?2 GROUP BY s.step ORDER BY MIN(s.rowid)",
                )
                .map_err(|e| self.err(e))?;
            let steps: Vec<(String, i64, i64)> = stmt
                .query_map(params![name, since_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for (step, ok, failed) in steps {
                let h = self.merged_step(&step, Some(&name), since_ms)?;
                let q = |x: f64| (!h.is_empty()).then(|| h.value_at_quantile(x) as f64 / 1e6);
                out.push(StepWindow {
                    step,
                    ok: ok as u64,
                    failed: failed as u64,
                    samples: h.len(),
                    p50: q(0.50),
                    p95: q(0.95),
                    p99: q(0.99),
                });
            }
            probes.push(ProbeWindow {
                probe: name,
                platform,
                runs: n as u64,
                iterations: iterations as u64,
                successes: successes as u64,
                success_ratio: (iterations > 0).then(|| successes as f64 / iterations as f64),
                steps: out,
            });
        }
        Ok(WindowSummary {
            window_seconds: window.as_secs(),
            runs: runs as u64,
            probes,
        })
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, HistoryError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}
