//! The edges of one trie node on one path, found from the message's value instead of being tested one by
//! one: exact strings and numbers by hash, equals-ignore-case by the lowered value, prefixes and suffixes
//! by looking up the value's own prefixes and suffixes of the lengths in use, numeric ranges by a segment
//! tree over the ranges' end points. Each lookup costs about the same whatever the number of policies, so
//! a matcher of 1,000 policies does little more work per message than one of 10.

use std::collections::HashMap;

use super::super::{Condition, NumericOp, eval::Found};
use super::number_key;

/// Whether every condition can be found through a [`ValueIndex`]; other predicates are tested.
pub(super) fn indexable(conditions: &[Condition]) -> bool {
    conditions.iter().all(|c| match c {
        Condition::String(_)
        | Condition::Number(_)
        | Condition::Prefix(_)
        | Condition::Suffix(_)
        | Condition::Numeric(_) => true,
        // Non-ASCII patterns lower-case differently from the evaluator's ASCII fast path; they are rare.
        Condition::EqualsIgnoreCase(p) => p.is_ascii(),
        _ => false,
    })
}

/// Strings looked up by some of their prefixes (or suffixes): the lengths present, and what is kept per
/// prefix (children of a trie node, or a bitset of alternatives).
#[derive(Debug)]
pub(super) struct Affixes<T> {
    lengths: Vec<usize>,
    entries: HashMap<Box<str>, T>,
}

impl<T> Default for Affixes<T> {
    fn default() -> Self {
        Self {
            lengths: Vec::new(),
            entries: HashMap::new(),
        }
    }
}

impl<T: Default> Affixes<T> {
    /// What is kept for `affix`, created empty.
    pub(super) fn entry(&mut self, affix: &str) -> &mut T {
        if !self.lengths.contains(&affix.len()) {
            self.lengths.push(affix.len());
            self.lengths.sort_unstable();
        }
        self.entries.entry(affix.into()).or_default()
    }

    /// Visit what is kept for each prefix (or suffix) of `value` in use.
    pub(super) fn find(&self, value: &str, suffix: bool, visit: &mut impl FnMut(&T)) {
        for &len in &self.lengths {
            if len > value.len() {
                break;
            }
            let at = if suffix { value.len() - len } else { len };
            if !value.is_char_boundary(at) {
                continue;
            }
            let part = if suffix { &value[at..] } else { &value[..at] };
            if let Some(kept) = self.entries.get(part) {
                visit(kept);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An interval of numbers: (low, low inclusive, high, high inclusive); open ends are infinite.
pub(super) type Interval = (f64, bool, f64, bool);

/// A numeric condition as an interval.
pub(super) fn interval(bounds: &[(NumericOp, f64)]) -> Interval {
    let (mut lo, mut lo_inclusive, mut hi, mut hi_inclusive) =
        (f64::NEG_INFINITY, false, f64::INFINITY, false);
    for &(op, n) in bounds {
        match op {
            NumericOp::Eq => (lo, lo_inclusive, hi, hi_inclusive) = (n, true, n, true),
            NumericOp::Gt => (lo, lo_inclusive) = (n, false),
            NumericOp::Ge => (lo, lo_inclusive) = (n, true),
            NumericOp::Lt => (hi, hi_inclusive) = (n, false),
            NumericOp::Le => (hi, hi_inclusive) = (n, true),
        }
    }
    (lo, lo_inclusive, hi, hi_inclusive)
}

/// The elementary regions that the end points of some intervals cut the number line into: region `2i + 1`
/// is the point `points[i]`, region `2i` the open interval just below it, region `2 * points.len()`
/// everything above the last point.
#[derive(Debug, Default)]
pub(super) struct Cuts {
    points: Vec<f64>,
}

impl Cuts {
    pub(super) fn new(intervals: impl Iterator<Item = Interval>) -> Self {
        let mut points: Vec<f64> = intervals
            .flat_map(|(lo, _, hi, _)| [lo, hi])
            .filter(|p| p.is_finite())
            .map(|p| if p == 0.0 { 0.0 } else { p })
            .collect();
        points.sort_by(f64::total_cmp);
        points.dedup();
        Self { points }
    }

    pub(super) fn regions(&self) -> usize {
        2 * self.points.len() + 1
    }

    /// The region of `x` (not NaN).
    pub(super) fn region(&self, x: f64) -> usize {
        let below = self.points.partition_point(|p| *p < x);
        if self.points.get(below) == Some(&x) {
            2 * below + 1
        } else {
            2 * below
        }
    }

    /// The first and last region an interval covers, if any.
    pub(super) fn span(&self, (lo, lo_inclusive, hi, hi_inclusive): Interval) -> Option<(usize, usize)> {
        let first = if lo == f64::NEG_INFINITY {
            0
        } else if lo_inclusive {
            self.region(lo)
        } else {
            self.region(lo) + 1
        };
        let last = if hi == f64::INFINITY {
            self.regions() - 1
        } else if hi_inclusive {
            self.region(hi)
        } else {
            self.region(hi).checked_sub(1)?
        };
        (first <= last).then_some((first, last))
    }
}

/// Numeric ranges, found by a stabbing query on a segment tree over the elementary regions ([`Cuts`]) their
/// end points cut the number line into.
#[derive(Debug, Default)]
struct Ranges {
    pending: Vec<(Interval, usize)>,
    cuts: Cuts,
    /// Segment tree nodes (1-based, leaves from `size`): the children whose range covers the node.
    tree: Vec<Vec<usize>>,
    size: usize,
}

impl Ranges {
    fn build(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.cuts = Cuts::new(self.pending.iter().map(|(i, _)| *i));
        self.size = self.cuts.regions().next_power_of_two();
        self.tree = vec![Vec::new(); 2 * self.size];
        for (interval, child) in std::mem::take(&mut self.pending) {
            let Some((first, last)) = self.cuts.span(interval) else {
                continue;
            };
            let (mut l, mut r) = (first + self.size, last + self.size + 1);
            while l < r {
                if l & 1 == 1 {
                    push_once(&mut self.tree[l], child);
                    l += 1;
                }
                if r & 1 == 1 {
                    r -= 1;
                    push_once(&mut self.tree[r], child);
                }
                l >>= 1;
                r >>= 1;
            }
        }
    }

    fn find(&self, x: f64, visit: &mut impl FnMut(usize)) {
        // NaN compares false with every bound, as in the evaluator.
        if self.tree.is_empty() || x.is_nan() {
            return;
        }
        let mut node = self.cuts.region(x) + self.size;
        while node > 0 {
            for &child in &self.tree[node] {
                visit(child);
            }
            node >>= 1;
        }
    }
}

/// Children of one trie node reached through indexable predicates on one path.
#[derive(Debug, Default)]
pub(super) struct ValueIndex {
    pub(super) field: usize,
    strings: HashMap<Box<str>, Vec<usize>>,
    numbers: HashMap<u64, Vec<usize>>,
    lowered: HashMap<Box<str>, Vec<usize>>,
    prefixes: Affixes<Vec<usize>>,
    suffixes: Affixes<Vec<usize>>,
    ranges: Ranges,
    /// Every child here, for a path whose value cannot be known without the exact evaluator.
    pub(super) all: Vec<usize>,
}

impl ValueIndex {
    pub(super) fn new(field: usize) -> Self {
        Self {
            field,
            ..Self::default()
        }
    }

    /// Add the edge to `child` for a predicate whose conditions are all [`indexable`].
    pub(super) fn insert(&mut self, conditions: &[Condition], child: usize) {
        push_once(&mut self.all, child);
        for condition in conditions {
            match condition {
                Condition::String(s) => push_once(self.strings.entry(s.as_str().into()).or_default(), child),
                Condition::Number(n) => push_once(self.numbers.entry(number_key(*n)).or_default(), child),
                Condition::EqualsIgnoreCase(p) => {
                    push_once(
                        self.lowered.entry(p.to_ascii_lowercase().into()).or_default(),
                        child,
                    );
                }
                Condition::Prefix(p) => push_once(self.prefixes.entry(p), child),
                Condition::Suffix(s) => push_once(self.suffixes.entry(s), child),
                Condition::Numeric(bounds) => self.ranges.pending.push((interval(bounds), child)),
                _ => unreachable!("only indexable conditions are inserted"),
            }
        }
    }

    /// Finish building once every edge is in.
    pub(super) fn build(&mut self) {
        self.ranges.build();
    }

    /// Visit every child whose predicate holds for one of the path's values.
    pub(super) fn find(&self, value: &Found<'_>, visit: &mut impl FnMut(usize)) {
        match value {
            Found::Str(s) => {
                for &child in self.strings.get(s.as_ref()).into_iter().flatten() {
                    visit(child);
                }
                if !self.lowered.is_empty() {
                    // The evaluator compares ASCII values ASCII-case-insensitively and others by Unicode
                    // lower case; for an ASCII pattern both come down to this key.
                    let key = if s.is_ascii() {
                        s.to_ascii_lowercase()
                    } else {
                        s.to_lowercase()
                    };
                    for &child in self.lowered.get(key.as_str()).into_iter().flatten() {
                        visit(child);
                    }
                }
                for (affixes, suffix) in [(&self.prefixes, false), (&self.suffixes, true)] {
                    affixes.find(s, suffix, &mut |children| {
                        for &child in children {
                            visit(child);
                        }
                    });
                }
            }
            Found::Num(x) => {
                for &child in self.numbers.get(&number_key(*x)).into_iter().flatten() {
                    visit(child);
                }
                self.ranges.find(*x, visit);
            }
            Found::Bool(_) | Found::Null | Found::Other => {}
        }
    }
}

fn push_once(children: &mut Vec<usize>, child: usize) {
    if !children.contains(&child) {
        children.push(child);
    }
}
