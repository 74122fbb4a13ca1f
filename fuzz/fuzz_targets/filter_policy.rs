//! Fuzzes the filter-policy parser and evaluator: any bytes as a policy (in both scopes) and as a message
//! must give a result or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The filter engine is its own crate (crates/sns-filter) with no dependency on the rest of Tributary, so the
// fuzz build compiles it alone instead of the whole operator with sanitizers.
use sns_filter::{Message, Policy, Scope};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Split the input into a policy and a message at the first NUL, so both halves are explored.
    let (policy, message) = text.split_once('\0').unwrap_or((&text, "{}"));
    for scope in [Scope::MessageAttributes, Scope::MessageBody] {
        if let Ok(p) = Policy::parse_str(policy, scope) {
            let _ = p.canonical_json();
            let reparsed = Policy::parse(&p.canonical(), scope).expect("the canonical form of a valid policy is valid");
            assert_eq!(reparsed.canonical_json(), p.canonical_json(), "canonical form is a fixed point");
            let m = match scope {
                Scope::MessageAttributes => Message::from_attributes_json(message),
                Scope::MessageBody => Message::from_body_json(message),
            };
            if let Ok(m) = m {
                assert_eq!(p.explain(&m).matched, p.matches(&m));
            }
        }
    }
});
