//! Raw [`ProbeDef`] -> validated [`Probe`], collecting every semantic problem of a file
//! (bad names, duplicate steps, unknown template variables, `poll` without `until`, ...)
//! rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::definition::{ProbeDef, RequestDef, SloDef, StepDef};
use super::diag::Sink;
use super::model::{Body, Capture, Method, Poll, Probe, Request, Slo, Step, VerifyJws};
use super::validate_parts::{Ctx, valid_name, valid_var};

/// Validates a parsed probe file. Problems are pushed to `sink`; the returned probe is only
/// meaningful when none were.
pub(crate) fn probe(def: &ProbeDef, path: &Path, sink: &mut Sink<'_>, builtins: &[&str]) -> Probe {
    let name = def.name.get_ref();
    if !valid_name(name) {
        sink.at(
            &def.name.span(),
            "name",
            format!("invalid probe name {name:?}: use [a-z0-9-]+"),
        );
    }
    if def.step.is_empty() {
        sink.at(
            &def.name.span(),
            "step",
            "the probe has no steps: add at least one [[step]]",
        );
    }
    let mut ctx = Ctx {
        sink,
        builtins,
        captured: BTreeSet::new(),
        captured_later: BTreeMap::new(),
        used: BTreeSet::new(),
    };
    for s in def.step.iter().rev() {
        for var in s.get_ref().capture.keys() {
            let step = s.get_ref().name.get_ref().clone();
            ctx.captured_later.insert(var.get_ref().clone(), step);
        }
    }
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut steps = Vec::new();
    for (i, s) in def.step.iter().enumerate() {
        let sname = s.get_ref().name.get_ref();
        let key = if valid_name(sname) {
            format!("step.{sname}")
        } else {
            format!("step.#{}", i + 1)
        };
        if !valid_name(sname) {
            let span = s.get_ref().name.span();
            ctx.err(
                &span,
                &format!("{key}.name"),
                format!("invalid step name {sname:?}: use [a-z0-9-]+"),
            );
        } else if let Some((_, first)) = seen.iter().find(|(n, _)| *n == sname) {
            let span = s.get_ref().name.span();
            let msg = format!("duplicate step name {sname:?} (first used on line {first})");
            ctx.err(&span, &format!("{key}.name"), msg);
        }
        let line = super::diag::line_col(ctx.sink.src, s.span().start).0;
        seen.push((sname, line));
        steps.push(step(&mut ctx, s, &key, line));
    }
    Probe {
        name: name.clone(),
        platform: def.platform,
        description: def.description.clone(),
        tags: def.tags.clone(),
        steps,
        source: path.to_path_buf(),
    }
}

fn step(ctx: &mut Ctx<'_, '_>, s: &Spanned<StepDef>, key: &str, line: usize) -> Step {
    let def = s.get_ref();
    ctx.used.clear();
    let timeout = def.timeout.as_ref().map(|t| {
        if t.get_ref().get().is_zero() {
            ctx.err(
                &t.span(),
                &format!("{key}.timeout"),
                "timeout must be greater than zero",
            );
        }
        t.get_ref().get()
    });
    let request = request(ctx, def.request.get_ref(), &format!("{key}.request"));
    let expect = match &def.expect {
        Some(e) => ctx.expect(e.get_ref(), &format!("{key}.expect")),
        None => Default::default(),
    };
    let poll = match (&def.poll, &def.until) {
        (Some(p), Some(u)) => {
            let (every, within) = (
                p.get_ref().every.get_ref().get(),
                p.get_ref().within.get_ref().get(),
            );
            if every.is_zero() {
                ctx.err(
                    &p.get_ref().every.span(),
                    &format!("{key}.poll.every"),
                    "must be greater than zero",
                );
            }
            if within < every {
                let msg = format!(
                    "`within` ({}) is shorter than `every` ({})",
                    p.get_ref().within.get_ref(),
                    p.get_ref().every.get_ref()
                );
                ctx.err(
                    &p.get_ref().within.span(),
                    &format!("{key}.poll.within"),
                    msg,
                );
            }
            let until = ctx.expect(u.get_ref(), &format!("{key}.until"));
            let fail_if = def
                .fail_if
                .as_ref()
                .map(|f| ctx.expect(f.get_ref(), &format!("{key}.fail_if")));
            Some(Poll {
                every,
                within,
                until,
                fail_if,
            })
        }
        (Some(p), None) => {
            ctx.err(
                &p.span(),
                &format!("{key}.poll"),
                "`poll` needs an `until` condition to poll for",
            );
            None
        }
        (None, Some(u)) => {
            ctx.err(
                &u.span(),
                &format!("{key}.until"),
                "`until` only makes sense with `poll = { every, within }`",
            );
            None
        }
        (None, None) => None,
    };
    if let (None, Some(f)) = (&def.poll, &def.fail_if) {
        ctx.err(
            &f.span(),
            &format!("{key}.fail_if"),
            "`fail_if` only makes sense with `poll = { every, within }`",
        );
    }
    let slo = match &def.slo {
        Some(slo) => check_slo(ctx, slo, &format!("{key}.slo")),
        None => Slo::default(),
    };
    let capture = captures(ctx, def, key);
    let verify_jws = def.verify_jws.as_ref().map(|v| {
        let name = v.get_ref().capture.get_ref();
        // The bare-string form has no span of its own: point at `verify_jws`.
        let span = Some(v.get_ref().capture.span())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| v.span());
        if !ctx.captured.contains(name.as_str()) {
            let msg = format!("`{name}` is not captured by this or an earlier step");
            ctx.err(&span, &format!("{key}.verify_jws"), msg);
        }
        let expect = ctx.json_checks(&v.get_ref().expect, &format!("{key}.verify_jws.expect"));
        ctx.captured.insert("jws.*".to_string());
        VerifyJws {
            var: name.clone(),
            expect,
        }
    });
    let mut record = Vec::new();
    for r in &def.record {
        let name = r.get_ref();
        if !def.capture.keys().any(|c| c.get_ref() == name) {
            let msg = format!("`{name}` is not captured by this step: add it to `capture`");
            ctx.err(&r.span(), &format!("{key}.record"), msg);
        }
        record.push(name.clone());
    }
    Step {
        name: def.name.get_ref().clone(),
        auth: def.auth,
        timeout,
        retry_attempts: def.retry.as_ref().map_or(0, |r| r.attempts),
        request,
        expect,
        capture,
        poll,
        slo,
        verify_jws,
        record,
        variables: ctx.used.iter().cloned().collect(),
        line,
    }
}

fn request(ctx: &mut Ctx<'_, '_>, def: &RequestDef, key: &str) -> Request {
    let method = match &def.method {
        None => Method::Get,
        Some(m) => Method::parse(m.get_ref()).unwrap_or_else(|| {
            let all: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
            let msg = format!(
                "unknown method {:?}, expected one of {}",
                m.get_ref(),
                all.join(", ")
            );
            ctx.err(&m.span(), &format!("{key}.method"), msg);
            Method::Get
        }),
    };
    let url = def.url.get_ref();
    let url_key = format!("{key}.url");
    if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("{{")) {
        let msg = format!("url {url:?} must start with http://, https:// or a {{{{variable}}}}");
        ctx.err(&def.url.span(), &url_key, msg);
    }
    ctx.template(&def.url.span(), &url_key, url);
    let mut headers = Vec::new();
    for (name, value) in &def.headers {
        let hkey = format!("{key}.headers.{}", name.get_ref());
        let valid = !name.get_ref().is_empty()
            && name
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            ctx.err(
                &name.span(),
                &hkey,
                format!("invalid header name {:?}", name.get_ref()),
            );
        }
        ctx.template(&value.span(), &hkey, value.get_ref());
        headers.push((name.get_ref().clone(), value.get_ref().clone()));
    }
    let body = match (&def.json, &def.body) {
        (Some(_), Some(b)) => {
            ctx.err(
                &b.span(),
                &format!("{key}.body"),
                "`json` and `body` are mutually exclusive",
            );
            Body::None
        }
        (Some(j), None) => {
            Body::Json(ctx.json_value(&j.span(), &format!("{key}.json"), j.get_ref()))
        }
        (None, Some(b)) => {
            ctx.template(&b.span(), &format!("{key}.body"), b.get_ref());
            Body::Raw(b.get_ref().clone())
        }
        (None, None) => Body::None,
    };
    Request {
        method,
        url: url.clone(),
        headers,
        body,
    }
}

fn captures(ctx: &mut Ctx<'_, '_>, def: &StepDef, key: &str) -> Vec<Capture> {
    let mut out = Vec::new();
    for (var, path) in &def.capture {
        let ckey = format!("{key}.capture.{}", var.get_ref());
        let name = var.get_ref();
        if !valid_var(name) {
            ctx.err(
                &var.span(),
                &ckey,
                format!("invalid variable name {name:?}: use [A-Za-z_][A-Za-z0-9_]*"),
            );
        } else if ctx.builtins.contains(&name.as_str()) {
            ctx.err(
                &var.span(),
                &ckey,
                format!("`{name}` is a builtin variable and cannot be captured into"),
            );
        }
        if let Some(compiled) = ctx.json_path(&path.span(), &ckey, path.get_ref()) {
            out.push(Capture {
                var: name.clone(),
                path: path.get_ref().clone(),
                compiled,
            });
        }
        ctx.captured.insert(name.clone());
    }
    out
}

fn check_slo(ctx: &mut Ctx<'_, '_>, slo: &Spanned<SloDef>, key: &str) -> Slo {
    let d = slo.get_ref();
    let get = |v: Option<super::duration::Dur>| v.map(|d| d.get());
    let out = Slo {
        p50: get(d.p50),
        p95: get(d.p95),
        p99: get(d.p99),
        critical: get(d.critical),
    };
    let named = [
        ("p50", out.p50),
        ("p95", out.p95),
        ("p99", out.p99),
        ("critical", out.critical),
    ];
    for (n, v) in named {
        if v.is_some_and(|v| v.is_zero()) {
            ctx.err(
                &slo.span(),
                &format!("{key}.{n}"),
                "must be greater than zero",
            );
        }
    }
    let present: Vec<(&str, Duration)> = named
        .iter()
        .filter_map(|(n, v)| v.map(|v| (*n, v)))
        .collect();
    for pair in present.windows(2) {
        let ((a, da), (b, db)) = (pair[0], pair[1]);
        if da > db {
            let msg = format!(
                "{a} ({}) is larger than {b} ({})",
                humantime::format_duration(da),
                humantime::format_duration(db)
            );
            ctx.err(&slo.span(), &format!("{key}.{a}"), msg);
        }
    }
    out
}
