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

use std::collections::HashMap;

use super::super::{Condition, Scalar, canonical, eval::Found};
use super::index::{Affixes, Cuts, Interval, interval};
use super::{Predicate, extract::FieldValue, number_key, trie::NumberedClause};

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

/// Whether a lookup finds every condition of a predicate: one negative condition of each kind at most
/// (the exclusions of two would be merged), and ASCII equals-ignore-case (as in `index.rs`).
fn findable(conditions: &[Condition]) -> bool {
    let mut negative = [0_u8; 3];
    conditions.iter().all(|c| match c {
        Condition::String(_)
        | Condition::Number(_)
        | Condition::Null
        | Condition::Prefix(_)
        | Condition::Suffix(_)
        | Condition::Numeric(_)
        | Condition::Exists(_) => true,
        Condition::EqualsIgnoreCase(p) => p.is_ascii(),
        Condition::AnythingBut(_) => {
            negative[0] += 1;
            true
        }
        Condition::AnythingButPrefix(_) => {
            negative[1] += 1;
            true
        }
        Condition::AnythingButSuffix(_) => {
            negative[2] += 1;
            true
        }
        _ => false,
    }) && negative.iter().all(|&n| n <= 1)
}

/// Builds the arena, refusing past the word budget.
struct Arena {
    words: usize,
    data: Vec<u64>,
}

impl Arena {
    fn alloc(&mut self) -> Option<Set> {
        if self.data.len() + self.words > MAX_WORDS {
            return None;
        }
        let at = self.data.len();
        self.data.resize(at + self.words, 0);
        u32::try_from(at).ok()
    }

    /// OR `bits` into the set in `slot`, allocating it first.
    fn merge(&mut self, slot: &mut Option<Set>, bits: &[u64]) -> Option<Set> {
        let set = match *slot {
            Some(set) => set,
            None => *slot.insert(self.alloc()?),
        };
        for (word, bit) in self.data[set as usize..].iter_mut().zip(bits) {
            *word |= bit;
        }
        Some(set)
    }

    fn merge_key<K: Eq + std::hash::Hash>(
        &mut self,
        map: &mut HashMap<K, Set>,
        key: K,
        bits: &[u64],
    ) -> Option<()> {
        let mut slot = map.get(&key).copied();
        let set = self.merge(&mut slot, bits)?;
        map.insert(key, set);
        Some(())
    }

    fn merge_affix(&mut self, affixes: &mut Affixes<Option<Set>>, affix: &str, bits: &[u64]) -> Option<()> {
        self.merge(affixes.entry(affix), bits).map(drop)
    }

    fn store(&mut self, bits: &[u64]) -> Option<Set> {
        self.merge(&mut None, bits)
    }
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

impl Bits {
    /// `policies[i]` lists the alternatives of policy `i`. `None` when the sets would pass the limits.
    pub(super) fn build(policies: &[Vec<NumberedClause<'_>>]) -> Option<Self> {
        let count: usize = policies.iter().map(Vec::len).sum();
        if count > MAX_ALTERNATIVES {
            return None;
        }
        let words = count.div_ceil(64).max(1);
        let mut arena = Arena {
            words,
            data: Vec::new(),
        };
        // Share identical predicates; give each alternative's predicates on one path their own slots.
        let mut predicates: Vec<Predicate> = Vec::new();
        let mut interned: HashMap<(usize, String), usize> = HashMap::new();
        let mut slot_of: HashMap<(usize, usize), usize> = HashMap::new();
        // Per slot: its field, and per predicate the alternatives that have it there.
        let mut members: Vec<(usize, HashMap<usize, Vec<u64>>)> = Vec::new();
        let mut policy_of = Vec::with_capacity(count);
        for (policy, alternatives) in policies.iter().enumerate() {
            for clause in alternatives {
                let alternative = policy_of.len();
                policy_of.push(u32::try_from(policy).ok()?);
                let mut ids: Vec<usize> = clause
                    .iter()
                    .map(|&(field, conditions)| {
                        let key = (field, canonical::conditions(conditions).to_string());
                        *interned.entry(key).or_insert_with(|| {
                            predicates.push(Predicate {
                                field,
                                conditions: conditions.to_vec(),
                                indexed: findable(conditions),
                            });
                            predicates.len() - 1
                        })
                    })
                    .collect();
                ids.sort_unstable_by_key(|&p| (predicates[p].field, p));
                ids.dedup();
                let mut nth = (usize::MAX, 0);
                for p in ids {
                    let field = predicates[p].field;
                    nth = if nth.0 == field {
                        (field, nth.1 + 1)
                    } else {
                        (field, 0)
                    };
                    let slot = *slot_of.entry(nth).or_insert_with(|| {
                        members.push((field, HashMap::new()));
                        members.len() - 1
                    });
                    let bits = members[slot].1.entry(p).or_insert_with(|| vec![0; words]);
                    set_bit(bits, alternative);
                }
            }
        }
        let mut all = vec![0_u64; words];
        for i in 0..count {
            set_bit(&mut all, i);
        }
        let all_set = arena.store(&all)?;
        let mut slots = Vec::with_capacity(members.len());
        // Slots in the order of their paths, so a message's fields are read in order.
        members.sort_by_key(|(field, _)| *field);
        for (field, by_predicate) in members {
            slots.push(Self::slot(&mut arena, &predicates, field, by_predicate, &all)?);
        }
        Some(Self {
            words,
            arena: arena.data,
            slots,
            predicates,
            policy_of,
            all: all_set,
        })
    }

    fn slot(
        arena: &mut Arena,
        predicates: &[Predicate],
        field: usize,
        by_predicate: HashMap<usize, Vec<u64>>,
        all: &[u64],
    ) -> Option<Slot> {
        let mut slot = Slot {
            field,
            ..Slot::default()
        };
        let mut named = vec![0_u64; all.len()];
        let mut ranges = Vec::new();
        let mut by_predicate: Vec<(usize, Vec<u64>)> = by_predicate.into_iter().collect();
        by_predicate.sort_by_key(|(p, _)| *p);
        for (p, bits) in &by_predicate {
            for (n, b) in named.iter_mut().zip(bits) {
                *n |= b;
            }
            let predicate = &predicates[*p];
            if !predicate.indexed {
                slot.tested.push((*p, arena.store(bits)?));
                continue;
            }
            for condition in &predicate.conditions {
                match condition {
                    Condition::String(s) => arena.merge_key(&mut slot.strings, s.as_str().into(), bits)?,
                    Condition::Number(n) => arena.merge_key(&mut slot.numbers, number_key(*n), bits)?,
                    Condition::EqualsIgnoreCase(s) => {
                        arena.merge_key(&mut slot.lowered, s.to_ascii_lowercase().into(), bits)?;
                    }
                    Condition::Prefix(s) => arena.merge_affix(&mut slot.prefixes, s, bits)?,
                    Condition::Suffix(s) => arena.merge_affix(&mut slot.suffixes, s, bits)?,
                    Condition::Null => {
                        arena.merge(&mut slot.null, bits)?;
                    }
                    Condition::Exists(true) => {
                        arena.merge(&mut slot.exists, bits)?;
                    }
                    Condition::Exists(false) => {
                        arena.merge(&mut slot.absent, bits)?;
                    }
                    Condition::Numeric(bounds) => ranges.push((interval(bounds), bits.as_slice())),
                    Condition::AnythingBut(list) => {
                        for scalar in list {
                            match scalar {
                                Scalar::String(s) => {
                                    let (with, excluded) = negative(arena, &mut slot.but_strings)?;
                                    arena.merge(&mut Some(with), bits)?;
                                    arena.merge_key(excluded, s.as_str().into(), bits)?;
                                }
                                Scalar::Number(n) => {
                                    let (with, excluded) = negative(arena, &mut slot.but_numbers)?;
                                    arena.merge(&mut Some(with), bits)?;
                                    arena.merge_key(excluded, number_key(*n), bits)?;
                                }
                            }
                        }
                    }
                    Condition::AnythingButPrefix(s) => {
                        let (with, excluded) = negative(arena, &mut slot.but_prefixes)?;
                        arena.merge(&mut Some(with), bits)?;
                        arena.merge_affix(excluded, s, bits)?;
                    }
                    Condition::AnythingButSuffix(s) => {
                        let (with, excluded) = negative(arena, &mut slot.but_suffixes)?;
                        arena.merge(&mut Some(with), bits)?;
                        arena.merge_affix(excluded, s, bits)?;
                    }
                    _ => unreachable!("only findable conditions reach the lookups"),
                }
            }
        }
        let free: Vec<u64> = all.iter().zip(&named).map(|(a, n)| a & !n).collect();
        slot.free = arena.store(&free)?;
        Self::regions(arena, &mut slot, &ranges)?;
        Some(slot)
    }

    /// The alternatives each elementary region meets, swept once from below: a range adds its
    /// alternatives where it starts and takes them out after it ends (counted, as ranges overlap).
    fn regions(arena: &mut Arena, slot: &mut Slot, ranges: &[(Interval, &[u64])]) -> Option<()> {
        if ranges.is_empty() {
            return Some(());
        }
        slot.cuts = Cuts::new(ranges.iter().map(|(i, _)| *i));
        let regions = slot.cuts.regions();
        let (mut starts, mut ends) = (vec![Vec::new(); regions], vec![Vec::new(); regions]);
        for (interval, bits) in ranges {
            if let Some((first, last)) = slot.cuts.span(*interval) {
                starts[first].push(*bits);
                ends[last].push(*bits);
            }
        }
        let mut covering = vec![0_u32; arena.words * 64];
        let mut current = vec![0_u64; arena.words];
        // Regions between changes share one stored set.
        let (mut kept, mut changed): (Option<Set>, bool) = (None, false);
        for region in 0..regions {
            for bits in &starts[region] {
                for_each_bit(bits, |i| covering[i] += 1);
                or(&mut current, bits);
                changed = true;
            }
            if changed {
                kept = if current.iter().any(|&w| w != 0) {
                    Some(arena.store(&current)?)
                } else {
                    None
                };
                changed = false;
            }
            slot.regions.push(kept);
            for bits in &ends[region] {
                for_each_bit(bits, |i| {
                    covering[i] -= 1;
                    if covering[i] == 0 {
                        current[i / 64] &= !(1 << (i % 64));
                    }
                });
                changed = true;
            }
        }
        Some(())
    }

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

/// The (alternatives with, exclusions) pair of a negative kind, created empty.
fn negative<'s, K>(arena: &mut Arena, kind: &'s mut Option<(Set, K)>) -> Option<(Set, &'s mut K)>
where
    K: Default,
{
    if kind.is_none() {
        *kind = Some((arena.alloc()?, K::default()));
    }
    let (with, excluded) = kind.as_mut()?;
    Some((*with, excluded))
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
