//! API keys kept hashed: making a key, the Secret entry format, and the key ring the worker reads from the
//! mounted Secret and reads again every few seconds, so an added key works and a deleted (revoked) one is
//! refused without a restart.
//!
//! A key is `trb_` and 32 random bytes (base64url): 256 bits, so an unsalted SHA-256 is enough to keep it
//! (as GitHub and Stripe keep tokens); the worker hashes what a client sends and looks the hash up.
//! Neither a key nor its hash is ever logged: only key names.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Prefix of every key (lets secret scanners recognise one).
pub const KEY_PREFIX: &str = "trb_";
/// Prefix of a hash in the Secret.
const HASH_PREFIX: &str = "sha256:";

/// A new API key: the key (shown once) and its Secret entry value.
pub struct NewKey {
    /// The key, to give the client.
    pub key: String,
    /// `sha256:<hex>[ principal=<p>]`, the value of the Secret entry.
    pub entry: String,
}

/// Makes a key from the operating system's random source.
pub fn new_key(principal: Option<&str>) -> Result<NewKey, String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the operating system's random source failed".to_owned())?;
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let mut entry = format!("{HASH_PREFIX}{}", hex(&Sha256::digest(key.as_bytes())));
    if let Some(principal) = principal {
        entry.push_str(&format!(" principal={principal}"));
    }
    Ok(NewKey { key, entry })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` may be a principal or a key name: 1 to 128 letters, digits, `-`, `_`, `.`, `@`, `:`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':'))
}

/// One Secret entry, parsed: the key's hash and the principal it authenticates as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// SHA-256 of the key.
    pub hash: [u8; 32],
    /// Who the key authenticates as.
    pub principal: String,
}

/// Parses the entry `name` = `value`. The error names the key (never the value).
pub fn parse_entry(name: &str, value: &str) -> Result<Entry, String> {
    let mut parts = value.split_whitespace();
    let hash_text = parts
        .next()
        .and_then(|h| h.strip_prefix(HASH_PREFIX))
        .ok_or_else(|| format!("API key {name}: the value must start with sha256:<64 hex digits>"))?;
    let bytes = decode_hex(hash_text)
        .ok_or_else(|| format!("API key {name}: sha256: must be followed by 64 hex digits"))?;
    let mut principal = name.to_owned();
    for part in parts {
        match part.strip_prefix("principal=") {
            Some(p) => principal = p.to_owned(),
            None => {
                return Err(format!(
                    "API key {name}: unknown field after the hash (only principal=<name>)"
                ));
            }
        }
    }
    if !is_valid_name(&principal) {
        return Err(format!(
            "API key {name}: principal must be 1 to 128 letters, digits, '-', '_', '.', '@' or ':'"
        ));
    }
    // JWT principals are `jwt:<claim>`: a key may never pose as a token's subject.
    if principal.starts_with(super::jwt::PRINCIPAL_PREFIX) {
        return Err(format!("API key {name}: a principal may not start with 'jwt:'"));
    }
    Ok(Entry {
        hash: bytes,
        principal,
    })
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// The keys by hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    by_hash: HashMap<[u8; 32], String>,
}

impl Keys {
    /// The keys of `entries` (name, value); entries that do not parse are returned as errors beside.
    pub fn parse<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> (Self, Vec<String>) {
        let mut keys = Self::default();
        let mut errors = Vec::new();
        for (name, value) in entries {
            match parse_entry(name, value.trim()) {
                Ok(entry) => {
                    keys.by_hash.insert(entry.hash, entry.principal);
                }
                Err(error) => errors.push(error),
            }
        }
        (keys, errors)
    }

    /// The principal `key` authenticates as, if it is one of the keys.
    pub fn principal(&self, key: &str) -> Option<&str> {
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_hash.get(&hash).map(String::as_str)
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Reads the key directory: every regular file whose name does not start with `.`. A missing directory
/// is no keys (the Secret does not exist yet).
pub fn read_dir(dir: &Path) -> (Keys, Vec<String>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return (Keys::default(), Vec::new());
    };
    let mut files: Vec<(String, String)> = read
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            if name.starts_with('.') || !entry.path().is_file() {
                return None;
            }
            let value = std::fs::read_to_string(entry.path()).ok()?;
            Some((name, value))
        })
        .collect();
    files.sort();
    Keys::parse(files.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// The keys in use, shared with the reload task.
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Arc<RwLock<Keys>>,
    dir: PathBuf,
}

impl KeyRing {
    /// The ring of `dir`, read now.
    pub fn load(dir: PathBuf) -> Self {
        let ring = Self {
            keys: Arc::new(RwLock::new(Keys::default())),
            dir,
        };
        ring.reload();
        ring
    }

    /// The principal of `key`.
    pub fn principal(&self, key: &str) -> Option<String> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.principal(key).map(str::to_owned)
    }

    /// Reads the directory again; returns whether the keys changed.
    pub fn reload(&self) -> bool {
        let (keys, errors) = read_dir(&self.dir);
        for error in &errors {
            tracing::warn!(dir = %self.dir.display(), %error, "an API key entry was skipped");
        }
        let mut current = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current == keys {
            return false;
        }
        tracing::info!(dir = %self.dir.display(), keys = keys.len(), "API keys loaded");
        *current = keys;
        true
    }

    /// Reads the directory every `every` until the task is dropped.
    pub async fn watch(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ring = self.clone();
            // Reading files blocks: off the runtime's worker threads.
            let _ = tokio::task::spawn_blocking(move || ring.reload()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_verifies_against_its_entry_only() {
        let new = new_key(None).unwrap();
        assert!(
            new.key.starts_with(KEY_PREFIX) && new.key.len() == 47,
            "{}",
            new.key
        );
        assert!(!new.entry.contains(&new.key), "the entry never holds the key");
        let (keys, errors) = Keys::parse([("ci", new.entry.as_str())]);
        assert!(errors.is_empty());
        assert_eq!(keys.principal(&new.key), Some("ci"));
        assert_eq!(keys.principal(&format!("{}x", new.key)), None);
        assert_eq!(keys.principal(""), None);
        assert_ne!(new_key(None).unwrap().key, new.key);
    }

    #[test]
    fn rotation_keeps_the_principal() {
        let old = new_key(None).unwrap();
        let new = new_key(Some("ci")).unwrap();
        let (keys, _) = Keys::parse([("ci", old.entry.as_str()), ("ci-2", new.entry.as_str())]);
        assert_eq!(keys.principal(&old.key), Some("ci"));
        assert_eq!(keys.principal(&new.key), Some("ci"));
        let (revoked, _) = Keys::parse([("ci-2", new.entry.as_str())]);
        assert_eq!(revoked.principal(&old.key), None);
    }

    #[test]
    fn bad_entries_are_named_without_their_value() {
        let secret_looking = "sha256:zz".to_owned() + &"0".repeat(62);
        let cases = [
            ("a", "md5:abc", "must start with sha256:"),
            ("b", secret_looking.as_str(), "64 hex digits"),
            ("c", "sha256:abc", "64 hex digits"),
            (
                "d",
                &format!("sha256:{} owner=x", "a".repeat(64)),
                "unknown field",
            ),
            (
                "e",
                &format!("sha256:{} principal=a/b", "a".repeat(64)),
                "principal must be",
            ),
        ];
        for (name, value, rule) in cases {
            let error = parse_entry(name, value).unwrap_err();
            assert!(error.starts_with(&format!("API key {name}:")), "{error}");
            assert!(error.contains(rule), "{error}");
            assert!(!error.contains(value), "{error}");
        }
        let upper = parse_entry("u", &format!("sha256:{}", "AB".repeat(32))).unwrap();
        assert_eq!(upper.hash, [0xab; 32]);
    }

    #[test]
    fn the_directory_is_read_again_and_hidden_files_are_skipped() {
        let dir = std::env::temp_dir().join(format!("trb-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ring = KeyRing::load(dir.clone());
        let key = new_key(Some("team-a")).unwrap();
        assert_eq!(ring.principal(&key.key), None, "no directory, no key");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ci"), &key.entry).unwrap();
        std::fs::write(dir.join("..data"), &key.entry).unwrap();
        assert!(ring.reload());
        assert_eq!(ring.principal(&key.key).as_deref(), Some("team-a"));
        assert!(!ring.reload(), "unchanged");
        std::fs::remove_file(dir.join("ci")).unwrap();
        assert!(ring.reload());
        assert_eq!(ring.principal(&key.key), None, "revoked");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
