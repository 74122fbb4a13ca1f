//! Building the bitsets: alternatives numbered policy by policy, each alternative's predicates on one path
//! in their own slots, and per slot the lookups from a value to the alternatives it meets, all sets in one
//! arena within a word budget.

use std::collections::HashMap;

use super::super::super::{Condition, Scalar};
use super::super::index::{Affixes, Cuts, Interval, interval};
use super::super::{Predicate, Predicates, number_key, trie::NumberedClause};
use super::{Bits, MAX_ALTERNATIVES, MAX_WORDS, Set, Slot, for_each_bit, or};

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
    pub(in crate::matcher) fn build(policies: &[Vec<NumberedClause<'_>>]) -> Option<Self> {
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
        let mut interned = Predicates::default();
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
                    .map(|&(field, conditions)| interned.intern(field, conditions, findable))
                    .collect();
                let predicates = &interned.list;
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
        let predicates = interned.list;
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
