//! Probe definitions as data: the `probes/*.toml` format, its validated form, the
//! `{{var}}` templates, response assertions and captures.
//!
//! Loading ([`load_dir`], [`load_file`], [`load_str`]) is the single path used by
//! `probe check` and `probe run`; every problem is reported up front with file, line and
//! key. At run time the runner renders requests with [`render`] / [`render_json`], judges
//! responses with [`check()`] and fills [`Vars`] with [`capture()`].

pub mod assert;
pub mod capture;
pub mod definition;
pub mod diag;
pub mod duration;
pub mod load;
pub mod model;
pub mod template;
mod validate;
mod validate_parts;

pub use assert::{AssertionFailure, Response, check, check_json};
pub use capture::{CaptureFailure, capture};
pub use definition::{Auth, Platform};
pub use diag::{Diagnostic, LoadError};
pub use duration::Dur;
pub use load::{DEFAULT_BUILTINS, load_dir, load_file, load_str};
pub use model::{
    Body, Capture, Expect, JsonCheck, Matcher, Method, Poll, Probe, Request, Slo, Step, VerifyJws,
};
pub use template::{TemplateError, Vars, render, render_json, variables};
