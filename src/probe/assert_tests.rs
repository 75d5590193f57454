//! Unit tests for `assert`: the exact wording of failure messages is part of the product.

use serde_json::{Value, json};
use serde_json_path::JsonPath;

use super::*;
use crate::probe::model::is_singular_path;

fn expect(status: &[u16], checks: &[(&str, Matcher)]) -> Expect {
    Expect {
        status: status.to_vec(),
        json: checks
            .iter()
            .map(|(p, m)| JsonCheck {
                path: p.to_string(),
                compiled: JsonPath::parse(p).unwrap(),
                singular: is_singular_path(p),
                matcher: m.clone(),
            })
            .collect(),
    }
}

fn run(e: &Expect, status: u16, body: &Value) -> Vec<String> {
    let vars: Vars = [("fixture.product_id", "com.x"), ("n", "3")]
        .into_iter()
        .collect();
    let resp = Response {
        status,
        json: Some(body),
        body_snippet: "",
        content_type: None,
    };
    check(e, &resp, &vars)
        .into_iter()
        .map(|f| f.message)
        .collect()
}

fn one(path: &str, m: Matcher, body: Value) -> Vec<String> {
    run(&expect(&[], &[(path, m)]), 200, &body)
}

#[test]
fn status_messages() {
    assert_eq!(
        run(&expect(&[200], &[]), 401, &json!({})),
        ["status 401, expected 200"]
    );
    assert_eq!(
        run(&expect(&[200, 204], &[]), 500, &json!({})),
        ["status 500, expected one of 200, 204"]
    );
    assert_eq!(
        run(&expect(&[], &[]), 503, &json!({})),
        ["status 503, expected 2xx"]
    );
    assert!(run(&expect(&[], &[]), 204, &json!({})).is_empty());
}

#[test]
fn equals_and_not_equals() {
    let body = json!({"valid": false, "n": 1.0, "list": [{"a": true}, {"a": false}]});
    assert_eq!(
        one("$.valid", Matcher::Equals(json!(true)), body.clone()),
        ["$.valid is false, expected true"]
    );
    assert!(one("$.n", Matcher::Equals(json!(1)), body.clone()).is_empty());
    assert_eq!(
        one("$.gone", Matcher::Equals(json!(1)), body.clone()),
        ["$.gone is missing, expected 1"]
    );
    assert_eq!(
        one("$.list[*].a", Matcher::Equals(json!(true)), body.clone()),
        ["$.list[*].a: $['list'][1]['a'] is false, expected true"]
    );
    assert_eq!(
        one("$.valid", Matcher::NotEquals(json!(false)), body.clone()),
        ["$.valid is false, expected anything but false"]
    );
    // Template operands are rendered; a templated string matches a number's text.
    assert!(one("$.n", Matcher::Equals(json!("{{n}}")), json!({"n": 3})).is_empty());
    assert_eq!(
        one("$.n", Matcher::Equals(json!("{{nope}}")), body),
        ["$.n: cannot render expected value: unknown variable `nope`"]
    );
}

#[test]
fn contains_forms() {
    let body = json!({
        "entitlements": [{"productId": "com.a"}, {"productId": "com.b"}],
        "name": "premium monthly", "tags": ["x", 2], "obj": {"k": 1}
    });
    let ok =
        |p: &str, v: Value| assert!(one(p, Matcher::Contains(v), body.clone()).is_empty(), "{p}");
    ok("$.entitlements[*].productId", json!("com.b"));
    ok("$.name", json!("monthly"));
    ok("$.tags", json!(2));
    ok("$.obj", json!("k"));
    assert_eq!(
        one(
            "$.entitlements[*].productId",
            Matcher::Contains(json!("{{fixture.product_id}}")),
            body.clone()
        ),
        [
            "$.entitlements[*].productId has no element equal to \"com.x\" (matched 2: \"com.a\", \"com.b\")"
        ]
    );
    // A one-element wildcard match is still element equality, not substring.
    assert_eq!(
        one(
            "$.entitlements[*].productId",
            Matcher::Contains(json!("com")),
            json!({"entitlements": [{"productId": "com.a"}]})
        ),
        ["$.entitlements[*].productId has no element equal to \"com\" (matched 1: \"com.a\")"]
    );
    assert_eq!(
        one("$.name", Matcher::Contains(json!("annual")), body.clone()),
        ["$.name is \"premium monthly\", expected it to contain \"annual\""]
    );
    assert_eq!(
        one("$.tags", Matcher::Contains(json!("y")), body.clone()),
        ["$.tags has no element equal to \"y\" (2 elements)"]
    );
    assert_eq!(
        one("$.missing[*]", Matcher::Contains(json!("y")), body),
        ["$.missing[*] matched nothing, expected an element equal to \"y\""]
    );
}

#[test]
fn exists_and_numbers() {
    let body = json!({"x": 5, "s": "abc", "hits": [3, 9]});
    assert!(one("$.x", Matcher::Exists(true), body.clone()).is_empty());
    assert_eq!(
        one("$.y", Matcher::Exists(true), body.clone()),
        ["$.y is missing, expected it to exist"]
    );
    assert_eq!(
        one("$.x", Matcher::Exists(false), body.clone()),
        ["$.x exists (5), expected it to be absent"]
    );
    assert!(one("$.y", Matcher::Exists(false), body.clone()).is_empty());
    assert!(one("$.x", Matcher::Gte(json!(5)), body.clone()).is_empty());
    assert_eq!(
        one("$.x", Matcher::Gt(json!(5)), body.clone()),
        ["$.x is 5, expected > 5"]
    );
    assert_eq!(
        one("$.x", Matcher::Lt(json!("{{n}}")), body.clone()),
        ["$.x is 5, expected < 3"]
    );
    assert_eq!(
        one("$.s", Matcher::Lte(json!(1)), body.clone()),
        ["$.s is \"abc\", expected a number <= 1"]
    );
    assert_eq!(
        one("$.hits[*]", Matcher::Gt(json!(4)), body.clone()),
        ["$.hits[*]: $['hits'][0] is 3, expected > 4"]
    );
    assert_eq!(
        one("$.nope", Matcher::Lte(json!(1)), body),
        ["$.nope is missing, expected <= 1"]
    );
}

#[test]
fn no_json_body() {
    let e = expect(&[200], &[("$.valid", Matcher::Equals(json!(true)))]);
    let resp = Response {
        status: 200,
        json: None,
        body_snippet: "<html><body>Bad gateway from the load balancer, please retry</body></html>",
        content_type: Some("text/html; charset=utf-8"),
    };
    let msgs: Vec<String> = check(&e, &resp, &Vars::new())
        .into_iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(
        msgs,
        [
            "$.valid: no JSON body (Content-Type text/html; charset=utf-8; starts \"<html><body>Bad gateway from the load ba…\")"
        ]
    );
    let resp = Response {
        status: 200,
        json: None,
        body_snippet: "  ",
        content_type: None,
    };
    assert_eq!(
        check(&e, &resp, &Vars::new())[0].message,
        "$.valid: no JSON body (no Content-Type; empty body)"
    );
}
