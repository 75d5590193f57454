//! Secret values and where they come from.
//!
//! A [`Secret`] never prints its content: `Debug` and `Display` redact, so a secret that
//! ends up in a log line, an error or a panic message shows `[redacted]`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A secret string. Read it with [`Secret::expose`], only where it is sent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: for an `Authorization` header or a signer, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from in `probe.toml`: `{ env = "NAME" }` or `{ file = "path" }`.
/// An inline `{ value = "..." }` is accepted only with `insecure_inline = true`.
///
/// Deserialising never echoes what was written: a secret pasted where a source belongs
/// (`admin_token = "abc..."`) is refused with advice, not with serde's usual
/// `invalid type: string "abc..."`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSource {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
    pub value: Option<String>,
    pub insecure_inline: bool,
}

/// The table form, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceTable {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    value: Option<InlineValue>,
    #[serde(default)]
    insecure_inline: bool,
}

const NOT_INLINE: &str = "a secret is not written here itself (the value is not shown): write { env = \"NAME\" } or { file = \"path\" }";

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("{ env = \"NAME\" } or { file = \"path\" }")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SecretSource, A::Error> {
                let t =
                    SourceTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(SecretSource {
                    env: t.env,
                    file: t.file,
                    value: t.value.map(|v| v.0),
                    insecure_inline: t.insecure_inline,
                })
            }
            // Every scalar may be the secret itself: refuse without echoing it.
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretSource, E> {
                Err(E::custom(NOT_INLINE))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretSource, E> {
                Err(E::custom(NOT_INLINE))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretSource, E> {
                Err(E::custom(NOT_INLINE))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretSource, E> {
                Err(E::custom(NOT_INLINE))
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<SecretSource, E> {
                Err(E::custom(NOT_INLINE))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                _: A,
            ) -> Result<SecretSource, A::Error> {
                Err(serde::de::Error::custom(NOT_INLINE))
            }
        }
        d.deserialize_any(V)
    }
}

/// An inline `value`: a string, and never echoed when it is something else.
struct InlineValue(String);

impl<'de> Deserialize<'de> for InlineValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const MSG: &str = "`value` must be a string (the value is not shown)";
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = InlineValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<InlineValue, E> {
                Ok(InlineValue(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<InlineValue, E> {
                Err(E::custom(MSG))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<InlineValue, E> {
                Err(E::custom(MSG))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<InlineValue, E> {
                Err(E::custom(MSG))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<InlineValue, E> {
                Err(E::custom(MSG))
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<InlineValue, E> {
                Err(E::custom(MSG))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                _: A,
            ) -> Result<InlineValue, A::Error> {
                Err(serde::de::Error::custom(MSG))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                _: A,
            ) -> Result<InlineValue, A::Error> {
                Err(serde::de::Error::custom(MSG))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSource")
            .field("env", &self.env)
            .field("file", &self.file)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set (export it, or use {{ file = \"...\" }})")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "a secret source needs exactly one of `env` or `file` (inline `value` only with insecure_inline = true)"
    )]
    Shape,
}

impl SecretSource {
    pub fn from_env(name: &str) -> Self {
        SecretSource {
            env: Some(name.to_string()),
            file: None,
            value: None,
            insecure_inline: false,
        }
    }

    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        SecretSource {
            env: None,
            file: Some(path.into()),
            value: None,
            insecure_inline: false,
        }
    }

    /// Checks the shape: exactly one source, inline only when explicitly allowed.
    pub fn validate(&self) -> Result<(), SecretError> {
        let inline_ok = self.value.is_some() && self.insecure_inline;
        let n = self.env.is_some() as u8 + self.file.is_some() as u8 + inline_ok as u8;
        if n == 1 && (self.value.is_none() || self.insecure_inline) {
            Ok(())
        } else {
            Err(SecretError::Shape)
        }
    }

    /// The file this secret lives in, resolved against `base` (the config's folder).
    pub fn file_path(&self, base: &Path) -> Option<PathBuf> {
        self.file.as_ref().map(|p| base.join(p))
    }

    /// Reads the secret; a file's trailing newline is dropped.
    pub fn load(&self, base: &Path) -> Result<Secret, SecretError> {
        self.validate()?;
        if let Some(name) = &self.env {
            return std::env::var(name)
                .map(Secret)
                .map_err(|_| SecretError::MissingEnv(name.clone()));
        }
        if let Some(path) = self.file_path(base) {
            let text = std::fs::read_to_string(&path).map_err(|e| SecretError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            warn_if_world_readable(&path);
            return Ok(Secret(text.trim_end_matches(['\n', '\r']).to_string()));
        }
        Ok(Secret(self.value.clone().unwrap_or_default()))
    }
}

/// A secret file others can read is worth a warning, not a refusal (ConfigMaps mount 0644).
/// Key files read by path (the `.p8`, the service account) get the same warning.
pub fn warn_if_world_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o004 != 0
        {
            tracing::warn!(path = %path.display(), "secret file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}{s}").contains("hunter2"));
        let src = SecretSource {
            env: None,
            file: None,
            value: Some("hunter2".into()),
            insecure_inline: true,
        };
        assert!(!format!("{src:?}").contains("hunter2"));
    }

    #[test]
    fn deserialising_never_echoes_a_pasted_secret() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Holder {
            token: SecretSource,
        }
        for text in [
            "token = \"hunter2-sekrit\"",
            "token = 8675309",
            "token = 86.75309",
            "token = [\"hunter2-sekrit\"]",
            "token = { value = 8675309, insecure_inline = true }",
            "token = { value = [\"hunter2-sekrit\"], insecure_inline = true }",
        ] {
            // The message alone: toml's Display also quotes the source line.
            let e = toml::from_str::<Holder>(text)
                .unwrap_err()
                .message()
                .to_string();
            assert!(
                !e.contains("hunter2") && !e.contains("8675309") && !e.contains("86.75"),
                "{e}"
            );
            assert!(e.contains("not shown"), "{e}");
        }
        let ok: Holder =
            toml::from_str("token = { value = \"v\", insecure_inline = true }").unwrap();
        assert_eq!(ok.token.value.as_deref(), Some("v"));
        let ok: Holder = toml::from_str("token = { env = \"X\" }").unwrap();
        assert_eq!(ok.token, SecretSource::from_env("X"));
        let e = toml::from_str::<Holder>("token = { vaule = \"hunter2\" }")
            .unwrap_err()
            .message()
            .to_string();
        assert!(e.contains("vaule") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn inline_needs_explicit_opt_in() {
        let mut src = SecretSource {
            env: None,
            file: None,
            value: Some("x".into()),
            insecure_inline: false,
        };
        assert_eq!(src.validate(), Err(SecretError::Shape));
        src.insecure_inline = true;
        assert!(src.validate().is_ok());
    }

    #[test]
    fn file_secret_trims_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "abc\n").unwrap();
        let s = SecretSource::from_file("t").load(dir.path()).unwrap();
        assert_eq!(s.expose(), "abc");
        let missing = SecretSource::from_file("nope").load(dir.path());
        assert!(matches!(missing, Err(SecretError::File { .. })));
    }
}
