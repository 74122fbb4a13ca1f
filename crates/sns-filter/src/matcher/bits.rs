//! The matcher as bitsets, for sets of up to a few thousand alternatives: one bit per alternative (a
//! policy with `$or` multiplied out), and per path a few lookups that each give, as one bitset, the
//! alternatives whose condition on that path the message's value meets. The alternatives that match are
//! those met on every path they name, one AND per path. The work per message is a few hash lookups and
//! bitset operations per path, whatever the number of policies, and nothing is walked per match: where a
//! thousand broad policies each match 5% of events, the trie visits fifty paths of nodes per event and
//! this touches a few kilobytes of contiguous words.
//!
//! A path's negative conditions (`anything-but`) are the alternatives that have one, less those whose
//! excluded value (or prefix, or suffix) the message's value is. Conditions no lookup finds (wildcards,
//! cidr, non-ASCII equals-ignore-case, two negative conditions of one kind for one key) are tested, once
//! per message and slot that has them.

mod build;

use std::collections::HashMap;

use super::super::eval::Found;
use super::index::{Affixes, Cuts};
use super::{Predicate, extract::FieldValue, number_key};

/// The most alternatives this engine takes (64 words a bitset); above it the trie is used, whose work
/// does not grow with the number of alternatives a message does not reach.
pub(super) const MAX_ALTERNATIVES: usize = 4096;

/// The most words all bitsets may take together (32 MiB); above it the trie is used.
const MAX_WORDS: usize = 4 << 20;

/// A bitset in the arena: its first word.
type Set = u32;

/// One path's conditions, as lookups from a value to the alternatives it meets. An alternative with two
/// predicates on one path has each in its own slot, so that every slot holds at most one predicate of an
/// alternative.
#[derive(Debug, Default)]
struct Slot {
    field: usize,
    /// Alternatives that do not name this slot (they pass it whatever the message holds).
    free: Set,
    strings: HashMap<Box<str>, Set>,
    numbers: HashMap<u64, Set>,
    /// Equals-ignore-case, by the lower-cased (ASCII) pattern.
    lowered: HashMap<Box<str>, Set>,
    prefixes: Affixes<Option<Set>>,
    suffixes: Affixes<Option<Set>>,
    null: Option<Set>,
    exists: Option<Set>,
    absent: Option<Set>,
    /// Elementary numeric regions and the alternatives whose ranges cover each (`None`: no range does).
    cuts: Cuts,
    regions: Vec<Option<Set>>,
    /// anything-but: (alternatives with one, alternatives excluding each value).
    but_strings: Option<(Set, HashMap<Box<str>, Set>)>,
    but_numbers: Option<(Set, HashMap<u64, Set>)>,
    but_prefixes: Option<(Set, Affixes<Option<Set>>)>,
    but_suffixes: Option<(Set, Affixes<Option<Set>>)>,
    /// Predicates no lookup finds, with their alternatives.
    tested: Vec<(usize, Set)>,
}

/// The compiled bitsets.
#[derive(Debug)]
pub(crate) struct Bits {
    /// Words per bitset.
    words: usize,
    arena: Vec<u64>,
    slots: Vec<Slot>,
    predicates: Vec<Predicate>,
    /// The policy of each alternative.
    policy_of: Vec<u32>,
    /// Every alternative (the bits past the last one clear).
    all: Set,
}

/// Per-message working memory for [`Bits::run`].
#[derive(Debug, Default)]
pub(crate) struct BitsScratch {
    candidates: Vec<u64>,
    met: Vec<u64>,
    excluded: Vec<u64>,
    lowered: String,
}

impl Bits {
    pub(super) fn scratch(&self) -> BitsScratch {
        BitsScratch {
            candidates: vec![0; self.words],
            met: vec![0; self.words],
            excluded: vec![0; self.words],
            lowered: String::new(),
        }
    }

    fn set(&self, set: Set) -> &[u64] {
        &self.arena[set as usize..set as usize + self.words]
    }

    /// The policies matching the message's values, ascending, into `out`. Returns whether they must be
    /// verified with the exact evaluator (see `FieldValue::Ambiguous`).
    pub(super) fn run(
        &self,
        fields: &[FieldValue<'_>],
        scratch: &mut BitsScratch,
        out: &mut Vec<usize>,
    ) -> bool {
        if scratch.candidates.len() != self.words {
            *scratch = self.scratch();
        }
        let mut verify = false;
        scratch.candidates.copy_from_slice(self.set(self.all));
        for slot in &self.slots {
            let value = &fields[slot.field];
            if matches!(value, FieldValue::Ambiguous) {
                // Every condition passes here; the candidates are verified.
                verify = true;
                continue;
            }
            scratch.met.fill(0);
            self.meet(slot, value, scratch);
            for &(p, set) in &slot.tested {
                if self.predicates[p].holds(value).unwrap_or(true) {
                    or(&mut scratch.met, self.set(set));
                }
            }
            let free = self.set(slot.free);
            let mut any = 0;
            for ((c, m), f) in scratch.candidates.iter_mut().zip(&scratch.met).zip(free) {
                *c &= m | f;
                any |= *c;
            }
            if any == 0 {
                break;
            }
        }
        // Alternatives are numbered policy by policy, so their policies come ascending, each once.
        out.clear();
        for_each_bit(&scratch.candidates, |alternative| {
            let policy = self.policy_of[alternative] as usize;
            if out.last() != Some(&policy) {
                out.push(policy);
            }
        });
        verify
    }

    /// OR into `scratch.met` the alternatives whose findable condition on `slot` the value meets.
    fn meet(&self, slot: &Slot, value: &FieldValue<'_>, scratch: &mut BitsScratch) {
        let values = match value {
            FieldValue::Absent => {
                self.or_some(&mut scratch.met, slot.absent);
                return;
            }
            FieldValue::Blocked | FieldValue::Ambiguous => return,
            FieldValue::Objects => {
                self.or_some(&mut scratch.met, slot.exists);
                return;
            }
            FieldValue::Values(values) => values,
        };
        // `exists: true` wants a value that is not null (as `eval::condition_matches_values`).
        if values.iter().any(|v| !matches!(v, Found::Null)) {
            self.or_some(&mut scratch.met, slot.exists);
        }
        for found in values {
            match found {
                Found::Str(s) => self.meet_string(slot, s, scratch),
                Found::Num(x) => {
                    self.or_some(&mut scratch.met, slot.numbers.get(&number_key(*x)).copied());
                    if !slot.regions.is_empty() && !x.is_nan() {
                        // NaN compares false with every bound, as in the evaluator.
                        self.or_some(&mut scratch.met, slot.regions[slot.cuts.region(*x)]);
                    }
                    if let Some((with, excluded)) = &slot.but_numbers {
                        let excluded = excluded.get(&number_key(*x)).copied();
                        self.or_but(&mut scratch.met, *with, excluded);
                    }
                }
                Found::Null => self.or_some(&mut scratch.met, slot.null),
                Found::Bool(_) | Found::Other => {}
            }
        }
    }

    fn meet_string(&self, slot: &Slot, s: &str, scratch: &mut BitsScratch) {
        let met = &mut scratch.met;
        self.or_some(met, slot.strings.get(s).copied());
        if !slot.lowered.is_empty() {
            // As in `index.rs`: ASCII values compare ASCII-case-insensitively, others by Unicode lower case.
            let lowered = &mut scratch.lowered;
            lowered.clear();
            if s.is_ascii() {
                lowered.push_str(s);
                lowered.make_ascii_lowercase();
            } else {
                lowered.push_str(&s.to_lowercase());
            }
            self.or_some(met, slot.lowered.get(lowered.as_str()).copied());
        }
        for (affixes, suffix) in [(&slot.prefixes, false), (&slot.suffixes, true)] {
            if !affixes.is_empty() {
                affixes.find(s, suffix, &mut |&set| self.or_some(met, set));
            }
        }
        if let Some((with, excluded)) = &slot.but_strings {
            self.or_but(met, *with, excluded.get(s).copied());
        }
        for (negative, suffix) in [(&slot.but_prefixes, false), (&slot.but_suffixes, true)] {
            if let Some((with, excluded)) = negative {
                scratch.excluded.fill(0);
                let out = &mut scratch.excluded;
                excluded.find(s, suffix, &mut |&set| self.or_some(out, set));
                for ((m, w), e) in met.iter_mut().zip(self.set(*with)).zip(&scratch.excluded) {
                    *m |= w & !e;
                }
            }
        }
    }

    fn or_some(&self, met: &mut [u64], set: Option<Set>) {
        if let Some(set) = set {
            or(met, self.set(set));
        }
    }

    /// The alternatives with a negative condition, less those it excludes the value from.
    fn or_but(&self, met: &mut [u64], with: Set, excluded: Option<Set>) {
        match excluded {
            None => or(met, self.set(with)),
            Some(excluded) => {
                for ((m, w), e) in met.iter_mut().zip(self.set(with)).zip(self.set(excluded)) {
                    *m |= w & !e;
                }
            }
        }
    }
}

fn or(into: &mut [u64], bits: &[u64]) {
    for (i, b) in into.iter_mut().zip(bits) {
        *i |= b;
    }
}

fn for_each_bit(bits: &[u64], mut f: impl FnMut(usize)) {
    for (w, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            f(w * 64 + word.trailing_zeros() as usize);
            word &= word - 1;
        }
    }
}
