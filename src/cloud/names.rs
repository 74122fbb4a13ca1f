//! Default cloud resource names, pure: derived from an object's namespace and name so that no two
//! objects of the cluster get the same name (`<ns>-<name>` did not: `a-b/c` and `a/b-c` both gave
//! `a-b-c`).
//!
//! - [`separated`] (SQS, SNS, Event Hubs): `<namespace>_<name>`. `_` is legal in those names and illegal
//!   in Kubernetes names, so the first `_` splits the two back. A name that does not fit, or has a
//!   character outside the plain set, is `<prefix>_<hash>`: a prefix of the sanitised pair (which always
//!   keeps the separating `_`) and a hash of `namespace/name`; it has two `_`, so it never equals a
//!   plain name.
//! - [`hashed_dns`] (Storage Queues, whose alphabet is lower-case letters, digits and single dashes,
//!   with no free separator): `<sanitised namespace-name prefix>-<hash>`, always with the hash.
//!
//! Neither scheme gives a name of the old `<namespace>-<name>` form ([`separated`] names contain `_`;
//! [`hashed_dns`] ones end in a hash), and objects that already recorded a name keep it (the callers
//! use the recorded name first), so no live resource is renamed.

use sha2::{Digest, Sha256};

/// Hex digits of the hash in a default name (40 bits).
const HASH_LEN: usize = 10;

/// The first [`HASH_LEN`] hex digits of SHA-256 of `namespace/name` (`/` is in neither, so the input
/// is unambiguous).
fn hash(namespace: &str, name: &str) -> String {
    Sha256::digest(format!("{namespace}/{name}").as_bytes())
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn plain(part: &str) -> bool {
    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `<namespace>_<name><suffix>` within `limit` characters, for clouds whose names allow letters,
/// digits, `-` and `_` (SQS, SNS; a subset of Event Hubs'). See the module doc.
pub fn separated(namespace: &str, name: &str, suffix: &str, limit: usize) -> String {
    let room = limit.saturating_sub(suffix.len());
    let joined = format!("{namespace}_{name}");
    if plain(namespace) && plain(name) && joined.len() <= room {
        return format!("{joined}{suffix}");
    }
    let sanitise = |part: &str| -> String {
        part.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    };
    let keep = room.saturating_sub(HASH_LEN + 1);
    let head: String = format!("{}_{}", sanitise(namespace), sanitise(name))
        .chars()
        .take(keep)
        .collect();
    format!("{head}_{}{suffix}", hash(namespace, name))
}

/// A Storage Queue style name (3–63 characters: lower-case letters, digits, single dashes, starting and
/// ending with a letter or digit): the sanitised `namespace-name`, cut to fit, then `-<hash>`.
pub fn hashed_dns(namespace: &str, name: &str, limit: usize) -> String {
    let mut head = String::new();
    for c in format!("{namespace}-{name}").chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && (head.is_empty() || head.ends_with('-'))) {
            head.push(c);
        }
    }
    head.truncate(limit.saturating_sub(HASH_LEN + 1));
    let head = head.trim_end_matches('-');
    if head.is_empty() {
        return hash(namespace, name);
    }
    format!("{head}-{}", hash(namespace, name))
}

/// The last path segment of a URL or `:`-separated ARN: the name a resource was recorded under.
pub fn last_segment(recorded: &str) -> Option<&str> {
    recorded
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .filter(|s| !s.is_empty())
}

/// The name in the recorded URL or ARN (see [`last_segment`]), else `default()`: a live resource keeps
/// the name it was created under, whatever the default has become since.
pub fn recorded_or(recorded: Option<&str>, default: impl FnOnce() -> String) -> String {
    recorded
        .and_then(last_segment)
        .map_or_else(default, str::to_owned)
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
