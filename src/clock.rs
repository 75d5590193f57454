//! Wall-clock helpers: Apple and Google speak epoch milliseconds and seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the UNIX epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
