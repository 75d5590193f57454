//! `Dur`: a `std::time::Duration` written in probe files as a humantime string
//! ("250ms", "2s", "1m"), so timeouts, poll intervals and SLO targets read like a runbook.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration parsed from a humantime string such as `"250ms"`, `"2s"` or `"1m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses a humantime string; the error says which text was wrong and why.
    pub fn parse(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            format!("invalid duration {s:?}: {e} (write e.g. \"250ms\", \"2s\" or \"5m\")")
        })
    }

    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Self {
        d.0
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DurVisitor;
        impl Visitor<'_> for DurVisitor {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"250ms\", \"2s\" or \"1m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(DurVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        d: Dur,
    }

    #[test]
    fn parses_humantime() {
        assert_eq!(
            Dur::parse("250ms").unwrap().get(),
            Duration::from_millis(250)
        );
        assert_eq!(Dur::parse("2s").unwrap().get(), Duration::from_secs(2));
        assert_eq!(Dur::parse("1m").unwrap().get(), Duration::from_secs(60));
        let t: T = toml::from_str("d = \"1m 30s\"").unwrap();
        assert_eq!(t.d.get(), Duration::from_secs(90));
    }

    #[test]
    fn bad_duration_names_the_text() {
        let e = toml::from_str::<T>("d = \"2x\"").err().unwrap();
        assert!(e.message().starts_with("invalid duration \"2x\": "), "{e}");
        let e = toml::from_str::<T>("d = 5").err().unwrap();
        assert!(e.message().contains("a duration string"), "{e}");
    }

    #[test]
    fn displays_and_serialises_as_humantime() {
        let d = Dur(Duration::from_millis(1500));
        assert_eq!(d.to_string(), "1s 500ms");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1s 500ms\"");
    }
}
