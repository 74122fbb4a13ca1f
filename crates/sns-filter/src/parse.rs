//! Parsing and validation: from a JSON value to a [`Policy`], enforcing the rules and limits of the SNS
//! "Filter policy constraints" page.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{Branch, Cidr, Condition, Node, NumericOp, Policy, PolicyError, Scalar, Scope, Wildcard, limits};

type Result<T> = std::result::Result<T, PolicyError>;

fn err(path: &str, rule: impl Into<String>) -> PolicyError {
    PolicyError {
        path: path.to_owned(),
        rule: rule.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn parse(value: &Value, scope: Scope) -> Result<Policy> {
    let size = value.to_string().len();
    if size > limits::MAX_BYTES {
        return Err(err(
            "",
            format!("{size} bytes exceeds the limit of {} bytes", limits::MAX_BYTES),
        ));
    }
    let Value::Object(map) = value else {
        return Err(err("", "a policy must be an object of keys"));
    };
    let root = branch(map, "", scope)?;
    check_limits(&root)?;
    Ok(Policy { scope, root })
}

fn branch(map: &Map<String, Value>, path: &str, scope: Scope) -> Result<Branch> {
    if map.is_empty() {
        return Err(err(path, "a policy must have at least one key"));
    }
    let mut out = Branch::default();
    for (key, value) in map {
        if key == "$or" {
            add_or(&mut out, alternatives(value, path, scope)?, path)?;
            continue;
        }
        let here = join(path, key);
        let node = match value {
            Value::Array(items) => Node::Conditions(conditions(items, &here)?),
            Value::Object(nested) if scope == Scope::MessageBody => {
                Node::Nested(branch(nested, &here, scope)?)
            }
            Value::Object(_) => {
                return Err(err(
                    &here,
                    "nested keys are not allowed in MessageAttributes scope; use scope MessageBody",
                ));
            }
            _ => {
                return Err(err(
                    &here,
                    "must be a list of values or conditions, e.g. [\"a\", {\"prefix\": \"b\"}]",
                ));
            }
        };
        match scope {
            // Attribute names are matched as written: a dot is part of the name.
            Scope::MessageAttributes => {
                out.keys.insert(key.clone(), node);
            }
            // AWS flattens body and policy alike into dotted paths, so "a.b" is the key b nested in a
            // (snapshot test_filter_policy_on_message_body_dot_attribute): it is stored nested.
            Scope::MessageBody => {
                let segments: Vec<&str> = key.split('.').collect();
                insert_path(&mut out, &segments, node, &here)?;
            }
        }
    }
    Ok(out)
}

/// Put `node` at the nested path `segments` of `out`, merging with what another spelling of the same path
/// put there (`{"a": {"b": ..}}` and `{"a.c": ..}` share `a`).
fn insert_path(out: &mut Branch, segments: &[&str], node: Node, here: &str) -> Result<()> {
    let Some((first, rest)) = segments.split_first() else {
        return Err(err(here, "a key must not be empty"));
    };
    if *first == "$or" {
        return Err(err(here, "$or cannot be part of a dotted key"));
    }
    if rest.is_empty() {
        return match (out.keys.remove(*first), node) {
            (None, node) => {
                out.keys.insert((*first).to_owned(), node);
                Ok(())
            }
            (Some(Node::Nested(mut existing)), Node::Nested(added)) => {
                merge(&mut existing, added, here)?;
                out.keys.insert((*first).to_owned(), Node::Nested(existing));
                Ok(())
            }
            _ => Err(err(
                here,
                "this path is named twice (once with dots, once nested)",
            )),
        };
    }
    let child = out
        .keys
        .entry((*first).to_owned())
        .or_insert_with(|| Node::Nested(Branch::default()));
    match child {
        Node::Nested(nested) => insert_path(nested, rest, node, here),
        Node::Conditions(_) => Err(err(
            here,
            "this path is named twice (once as a list of values, once as a parent of other keys)",
        )),
    }
}

fn merge(into: &mut Branch, added: Branch, here: &str) -> Result<()> {
    for (key, node) in added.keys {
        insert_path(into, &[key.as_str()], node, here)?;
    }
    for group in added.or {
        add_or(into, group, here)?;
    }
    Ok(())
}

/// A level holds one `$or` (a JSON object has one key of a name); two spellings of one path could bring two.
fn add_or(into: &mut Branch, group: Vec<Branch>, path: &str) -> Result<()> {
    if !into.or.is_empty() {
        return Err(err(
            &join(path, "$or"),
            "two $or lists apply to the same path; combine them into one",
        ));
    }
    into.or.push(group);
    Ok(())
}

fn alternatives(value: &Value, path: &str, scope: Scope) -> Result<Vec<Branch>> {
    let here = join(path, "$or");
    let Value::Array(items) = value else {
        return Err(err(&here, "must be a list of at least two policies"));
    };
    if items.len() < 2 {
        return Err(err(&here, "must be a list of at least two policies"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{here}[{i}]");
            match item {
                Value::Object(map) => branch(map, &at, scope),
                _ => Err(err(&at, "each $or alternative must be a policy object")),
            }
        })
        .collect()
}

fn conditions(items: &[Value], path: &str) -> Result<Vec<Condition>> {
    if items.is_empty() {
        return Err(err(path, "the list of values must not be empty"));
    }
    items.iter().map(|item| condition(item, path)).collect()
}

/// One value of a key's list. `true`, `false` and `null` are values in both scopes: the constraints page
/// lists them ("The keywords true, false, and null, without quotation marks"), AWS refuses a nested list
/// with "Match value must be String, number, true, false, or null" and accepted `[null, ...]` in
/// MessageAttributes scope (snapshots test_validate_policy and test_filter_policy).
fn condition(item: &Value, path: &str) -> Result<Condition> {
    match item {
        Value::String(s) => Ok(Condition::String(s.clone())),
        Value::Number(_) => Ok(Condition::Number(number(item, path)?)),
        Value::Bool(b) => Ok(Condition::Bool(*b)),
        Value::Null => Ok(Condition::Null),
        Value::Array(_) => Err(err(
            path,
            "a list of values cannot contain another list: a value must be a string, number, true, false or null",
        )),
        Value::Object(map) => operator(map, path),
    }
}

fn operator(map: &Map<String, Value>, path: &str) -> Result<Condition> {
    let mut entries = map.iter();
    let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
        return Err(err(path, "a condition object must have exactly one operator"));
    };
    let string_arg = |name: &str| -> Result<String> {
        match arg {
            Value::String(s) => Ok(s.clone()),
            _ => Err(err(path, format!("{name} takes a string"))),
        }
    };
    match op.as_str() {
        "prefix" => Ok(Condition::Prefix(string_arg("prefix")?)),
        "suffix" => Ok(Condition::Suffix(string_arg("suffix")?)),
        "equals-ignore-case" => Ok(Condition::EqualsIgnoreCase(string_arg("equals-ignore-case")?)),
        "wildcard" => Ok(Condition::Wildcard(wildcard(&string_arg("wildcard")?, path)?)),
        "exists" => match arg {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => Err(err(path, "exists takes true or false")),
        },
        "cidr" => Ok(Condition::Cidr(cidr(&string_arg("cidr")?, path)?)),
        "numeric" => numeric(arg, path),
        "anything-but" => anything_but(arg, path),
        other => Err(err(
            path,
            format!(
                "unknown operator {other:?}; expected prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists or cidr"
            ),
        )),
    }
}

const ANYTHING_BUT_FORMS: &str = "anything-but takes a value, a list of values, or one of {\"prefix\": ...}, {\"suffix\": ...}, {\"wildcard\": ...}";

fn anything_but(arg: &Value, path: &str) -> Result<Condition> {
    let scalar = |v: &Value| -> Result<Scalar> {
        match v {
            Value::String(s) => Ok(Scalar::String(s.clone())),
            Value::Number(_) => Ok(Scalar::Number(number(v, path)?)),
            _ => Err(err(path, "anything-but lists strings or numbers")),
        }
    };
    match arg {
        Value::String(_) | Value::Number(_) => Ok(Condition::AnythingBut(vec![scalar(arg)?])),
        Value::Array(items) if items.is_empty() => Err(err(path, "anything-but needs at least one value")),
        Value::Array(items) => Ok(Condition::AnythingBut(
            items.iter().map(scalar).collect::<Result<_>>()?,
        )),
        Value::Object(map) => match map.iter().collect::<Vec<_>>().as_slice() {
            [(op, Value::String(s))] if op.as_str() == "prefix" => {
                Ok(Condition::AnythingButPrefix(s.clone()))
            }
            [(op, Value::String(s))] if op.as_str() == "suffix" => {
                Ok(Condition::AnythingButSuffix(s.clone()))
            }
            [(op, Value::String(s))] if op.as_str() == "wildcard" => {
                Ok(Condition::AnythingButWildcard(wildcard(s, path)?))
            }
            _ => Err(err(path, ANYTHING_BUT_FORMS)),
        },
        _ => Err(err(path, ANYTHING_BUT_FORMS)),
    }
}

fn numeric(arg: &Value, path: &str) -> Result<Condition> {
    let Value::Array(items) = arg else {
        return Err(err(
            path,
            "numeric takes a list such as [\">=\", 0, \"<\", 100] or [\"=\", 5]",
        ));
    };
    let mut bounds = Vec::new();
    for pair in items.chunks(2) {
        let [Value::String(op), n] = pair else {
            return Err(err(
                path,
                "numeric takes operator/number pairs such as [\">=\", 0, \"<\", 100]",
            ));
        };
        let op = match op.as_str() {
            "=" => NumericOp::Eq,
            ">" => NumericOp::Gt,
            ">=" => NumericOp::Ge,
            "<" => NumericOp::Lt,
            "<=" => NumericOp::Le,
            other => {
                return Err(err(
                    path,
                    format!("unknown numeric operator {other:?}; expected =, >, >=, < or <="),
                ));
            }
        };
        bounds.push((op, number(n, path)?));
    }
    match bounds.as_slice() {
        [(NumericOp::Eq, _)] | [(NumericOp::Gt | NumericOp::Ge | NumericOp::Lt | NumericOp::Le, _)] => {}
        [
            (NumericOp::Gt | NumericOp::Ge, low),
            (NumericOp::Lt | NumericOp::Le, high),
        ] => {
            if low >= high {
                return Err(err(
                    path,
                    format!("numeric range: bottom {low} must be less than top {high}"),
                ));
            }
        }
        [_, _] => {
            return Err(err(
                path,
                "numeric range: the lower bound (> or >=) comes first, then the upper (< or <=)",
            ));
        }
        _ => return Err(err(path, "numeric takes one comparison or a range of two")),
    }
    Ok(Condition::Numeric(bounds))
}

/// A wildcard pattern: `*` matches any run of characters; `\*` and `\\` escape; `**` is refused as it
/// only costs matching time.
fn wildcard(pattern: &str, path: &str) -> Result<Wildcard> {
    let mut pieces = vec![String::new()];
    let mut chars = pattern.chars().peekable();
    let mut last_was_star = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('*' | '\\')) => {
                    pieces.last_mut().expect("never empty").push(e);
                    last_was_star = false;
                }
                _ => {
                    return Err(err(
                        path,
                        format!("wildcard {pattern:?}: a backslash may only escape * or \\"),
                    ));
                }
            },
            '*' if last_was_star => {
                return Err(err(
                    path,
                    format!("wildcard {pattern:?}: consecutive * are not allowed"),
                ));
            }
            '*' => {
                pieces.push(String::new());
                last_was_star = true;
            }
            other => {
                pieces.last_mut().expect("never empty").push(other);
                last_was_star = false;
            }
        }
    }
    Ok(Wildcard {
        source: pattern.to_owned(),
        pieces,
    })
}

/// A policy number: within ±1e9 and with at most 5 decimal places.
fn number(value: &Value, path: &str) -> Result<f64> {
    let Value::Number(n) = value else {
        return Err(err(path, "expected a number"));
    };
    let f = n
        .as_f64()
        .ok_or_else(|| err(path, format!("{n} is not a number SNS can compare")))?;
    if f.abs() > limits::MAX_NUMBER {
        return Err(err(
            path,
            format!("{n} is outside the range -1000000000 to 1000000000"),
        ));
    }
    let text = n.to_string();
    let decimals = text
        .split_once('.')
        .map_or(0, |(_, frac)| frac.trim_end_matches('0').len());
    if decimals > limits::MAX_DECIMALS || text.contains(['e', 'E']) && (f * 1e5).fract() != 0.0 {
        return Err(err(
            path,
            format!("{n} has more than {} decimal places", limits::MAX_DECIMALS),
        ));
    }
    Ok(f)
}

fn cidr(text: &str, path: &str) -> Result<Cidr> {
    let bad = || {
        err(
            path,
            format!("{text:?} is not a CIDR block such as 10.0.0.0/24 or 2001:db8::/32"),
        )
    };
    let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
    let network: IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(err(path, format!("prefix length {prefix} is longer than {max}")));
    }
    Ok(Cidr { network, prefix })
}

/// Each `$or` alternative, expanded: (number of keys, number of value combinations). A key's values count
/// once per level of nesting it sits at: AWS refused `{"key_a": {"key_b": {"key_c": [4 values]}},
/// "key_d": {"key_e": [3 values]}, "key_f": [3 values]}` as "too complex" (3x4 x 2x3 x 1x3 = 216, where
/// plain counting gives 36) and a nested `$or` policy whose weighted count is 160 (plain: 40): snapshots
/// test_sub_filter_policy_nested_property_constraints and test_policy_complexity_with_or. The guide's
/// "multiply the number of values in each array" is the flat case (depth 1).
fn alternatives_of(branch: &Branch, depth: usize) -> Result<Vec<(usize, usize)>> {
    let mut acc = vec![(0_usize, 1_usize)];
    for node in branch.keys.values() {
        let here = match node {
            Node::Conditions(c) => vec![(1, c.len().saturating_mul(depth))],
            Node::Nested(nested) => alternatives_of(nested, depth + 1)?,
        };
        acc = cross(&acc, &here)?;
    }
    for group in &branch.or {
        let mut options = Vec::new();
        for alt in group {
            options.extend(alternatives_of(alt, depth)?);
        }
        acc = cross(&acc, &options)?;
    }
    Ok(acc)
}

fn cross(a: &[(usize, usize)], b: &[(usize, usize)]) -> Result<Vec<(usize, usize)>> {
    if a.len().saturating_mul(b.len()) > limits::MAX_COMBINATIONS {
        return Err(err(
            "",
            format!(
                "more than {} value combinations; SNS allows at most {}",
                limits::MAX_COMBINATIONS,
                limits::MAX_COMBINATIONS
            ),
        ));
    }
    Ok(a.iter()
        .flat_map(|x| b.iter().map(move |y| (x.0 + y.0, x.1.saturating_mul(y.1))))
        .collect())
}

fn check_limits(root: &Branch) -> Result<()> {
    let alternatives = alternatives_of(root, 1)?;
    if let Some((keys, _)) = alternatives.iter().find(|(keys, _)| *keys > limits::MAX_KEYS) {
        return Err(err(
            "",
            format!(
                "{keys} keys in one alternative; SNS allows at most {}",
                limits::MAX_KEYS
            ),
        ));
    }
    let combinations: usize = alternatives
        .iter()
        .map(|(_, c)| *c)
        .fold(0, usize::saturating_add);
    if combinations > limits::MAX_COMBINATIONS {
        return Err(err(
            "",
            format!(
                "{combinations} value combinations; SNS allows at most {}",
                limits::MAX_COMBINATIONS
            ),
        ));
    }
    Ok(())
}
