//! The trie of alternatives: building it from the expanded policies, and running a message through it.

use std::collections::HashMap;

use super::super::{Condition, canonical};
use super::index::{ValueIndex, indexable};
use super::{PathTree, Predicate, Predicates, extract::FieldValue};

/// Below this many indexable edges on one path at one node, the edges are tested instead.
const INDEX_MIN_EDGES: usize = 8;

/// One alternative of a policy with its paths numbered: (path id, conditions of that key).
pub(super) type NumberedClause<'p> = Vec<(usize, &'p [Condition])>;

/// A node while the trie is being built.
#[derive(Debug, Default)]
struct Building {
    accept: Vec<usize>,
    /// (predicate, child) for every edge out of the node.
    edges: Vec<(usize, usize)>,
}

/// A node's edges as the finished trie lays them out: found through an index (predicate, child), or tested
/// (the predicates of a collapsed chain, the node at its end).
#[derive(Debug, Default)]
struct Out {
    indexed: Vec<(usize, usize)>,
    tested: Vec<(Vec<usize>, usize)>,
}

/// A node of the finished trie. Its accepted policies, indexes and tested edges are ranges of the
/// trie's flat arrays, so that a message's walk touches few, contiguous cache lines.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    accept: (u32, u32),
    indexed: (u32, u32),
    tested: (u32, u32),
}

/// An edge whose predicates (a chain of single-child nodes collapsed into one edge) must all hold.
#[derive(Debug, Clone, Copy)]
struct Tested {
    predicates: (u32, u32),
    child: u32,
}

#[derive(Debug)]
pub(crate) struct Trie {
    predicates: Vec<Predicate>,
    nodes: Vec<Node>,
    accept: Vec<u32>,
    indexes: Vec<ValueIndex>,
    tested: Vec<Tested>,
    /// Predicate ids of the tested edges.
    chains: Vec<u32>,
}

fn range<T>(items: &[T], start: usize) -> (u32, u32) {
    (start as u32, items.len() as u32)
}

/// Per-message working memory, reused across messages so that matching allocates little. Entries are
/// stamped with a message counter instead of being cleared.
#[derive(Debug, Default)]
pub(crate) struct TrieScratch {
    stamp: u32,
    /// Per predicate: stamp << 1 | result.
    memo: Vec<u32>,
    node_seen: Vec<u32>,
    policy_seen: Vec<u32>,
    stack: Vec<usize>,
}

impl Trie {
    /// `policies[i]` lists the alternatives of policy `i`, each as (path id, conditions) pairs.
    pub(super) fn build(policies: Vec<Vec<NumberedClause<'_>>>, paths: &PathTree) -> Self {
        // Share identical predicates: each alternative becomes a list of predicate ids.
        let mut predicates = Predicates::default();
        let alternatives: Vec<Vec<Vec<usize>>> = policies
            .into_iter()
            .map(|alternatives| {
                alternatives
                    .into_iter()
                    .map(|clause| {
                        clause
                            .into_iter()
                            .map(|(field, conditions)| predicates.intern(field, conditions, indexable))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let predicates = predicates.list;
        let rank = path_ranks(&predicates, paths.end[0]);
        let building = lay_out(alternatives, &predicates, &rank);
        Self::freeze(predicates, building)
    }

    /// Lay the built trie out flat, depth first from the root, choosing per node and path whether its
    /// edges are found through an index or tested, and collapsing chains of tested single-child nodes.
    fn freeze(predicates: Vec<Predicate>, building: Vec<Building>) -> Self {
        let mut outs: Vec<Option<Out>> = (0..building.len()).map(|_| None).collect();
        let mut id = vec![u32::MAX; building.len()];
        let mut order = Vec::new();
        let mut stack = vec![0];
        while let Some(n) = stack.pop() {
            id[n] = order.len() as u32;
            order.push(n);
            let out = split_edges(&building, n, &predicates);
            let targets = out
                .indexed
                .iter()
                .map(|e| e.1)
                .chain(out.tested.iter().map(|e| e.1));
            stack.extend(targets.collect::<Vec<_>>().into_iter().rev());
            outs[n] = Some(out);
        }

        let mut trie = Self {
            predicates,
            nodes: Vec::with_capacity(order.len()),
            accept: Vec::new(),
            indexes: Vec::new(),
            tested: Vec::new(),
            chains: Vec::new(),
        };
        for &n in &order {
            let out = outs[n].take().expect("every numbered node has its edges");
            trie.push_node(&building[n].accept, out, &id);
        }
        for index in &mut trie.indexes {
            index.build();
        }
        trie
    }

    /// Append one node, numbered in `id` order: its accepted policies, its indexes (one per path) and its
    /// tested edges, each a range of the flat arrays.
    fn push_node(&mut self, accept: &[usize], out: Out, id: &[u32]) {
        let accept_start = self.accept.len();
        self.accept.extend(accept.iter().map(|&p| p as u32));
        let indexed_start = self.indexes.len();
        for (p, child) in out.indexed {
            let predicate = &self.predicates[p];
            let at = match self.indexes[indexed_start..]
                .iter()
                .position(|i| i.field == predicate.field)
            {
                Some(i) => indexed_start + i,
                None => {
                    self.indexes.push(ValueIndex::new(predicate.field));
                    self.indexes.len() - 1
                }
            };
            self.indexes[at].insert(&predicate.conditions, id[child] as usize);
        }
        let tested_start = self.tested.len();
        for (chain, end) in out.tested {
            let start = self.chains.len();
            self.chains.extend(chain.iter().map(|&p| p as u32));
            self.tested.push(Tested {
                predicates: range(&self.chains, start),
                child: id[end],
            });
        }
        self.nodes.push(Node {
            accept: range(&self.accept, accept_start),
            indexed: range(&self.indexes, indexed_start),
            tested: range(&self.tested, tested_start),
        });
    }

    pub(super) fn scratch(&self, policies: usize) -> TrieScratch {
        TrieScratch {
            stamp: 0,
            memo: vec![0; self.predicates.len()],
            node_seen: vec![0; self.nodes.len()],
            policy_seen: vec![0; policies],
            stack: Vec::new(),
        }
    }

    /// Run the message's values through the trie; the matching policies land in `out`, sorted.
    /// Returns whether they must be verified with the exact evaluator (see `FieldValue::Ambiguous`).
    pub(super) fn run(
        &self,
        fields: &[FieldValue<'_>],
        scratch: &mut TrieScratch,
        out: &mut Vec<usize>,
    ) -> bool {
        let stamp = self.next_stamp(scratch);
        let mut verify = false;
        out.clear();
        scratch.stack.clear();
        scratch.stack.push(0);
        scratch.node_seen[0] = stamp;
        while let Some(n) = scratch.stack.pop() {
            let node = self.nodes[n];
            for &policy in &self.accept[node.accept.0 as usize..node.accept.1 as usize] {
                if let Some(seen) = scratch.policy_seen.get_mut(policy as usize)
                    && *seen != stamp
                {
                    *seen = stamp;
                    out.push(policy as usize);
                }
            }
            self.follow_indexes(node, fields, scratch, stamp, &mut verify);
            self.follow_tested(node, fields, scratch, stamp, &mut verify);
        }
        out.sort_unstable();
        verify
    }

    /// The stamp of a new message, remade or reset when needed (another trie's scratch, or the counter
    /// about to reach the bit the memo keeps the result in).
    fn next_stamp(&self, scratch: &mut TrieScratch) -> u32 {
        if scratch.memo.len() != self.predicates.len() || scratch.node_seen.len() != self.nodes.len() {
            *scratch = self.scratch(scratch.policy_seen.len());
        }
        scratch.stamp += 1;
        if scratch.stamp >= u32::MAX >> 1 {
            scratch.memo.fill(0);
            scratch.node_seen.fill(0);
            scratch.policy_seen.fill(0);
            scratch.stamp = 1;
        }
        scratch.stamp
    }

    /// Queue the children the node's indexes find for the message's values. Sets `verify` when the matches
    /// must be verified (an ambiguous value, for which every child is queued).
    #[inline]
    fn follow_indexes(
        &self,
        node: Node,
        fields: &[FieldValue<'_>],
        scratch: &mut TrieScratch,
        stamp: u32,
        verify: &mut bool,
    ) {
        for index in &self.indexes[node.indexed.0 as usize..node.indexed.1 as usize] {
            match &fields[index.field] {
                FieldValue::Values(values) => {
                    for value in values {
                        index.find(value, &mut |child| scratch.visit(child, stamp));
                    }
                }
                FieldValue::Ambiguous => {
                    *verify = true;
                    for &child in &index.all {
                        scratch.visit(child, stamp);
                    }
                }
                // Indexed conditions never match an absent key, an object, or a blocked path.
                FieldValue::Absent | FieldValue::Blocked | FieldValue::Objects => {}
            }
        }
    }

    /// Queue the children of the node's tested edges whose predicates all hold, each predicate evaluated
    /// once per message. Sets `verify` when the matches must be verified (a predicate that cannot say).
    #[inline]
    fn follow_tested(
        &self,
        node: Node,
        fields: &[FieldValue<'_>],
        scratch: &mut TrieScratch,
        stamp: u32,
        verify: &mut bool,
    ) {
        for edge in &self.tested[node.tested.0 as usize..node.tested.1 as usize] {
            let child = edge.child as usize;
            if scratch.node_seen[child] == stamp {
                continue;
            }
            let chain = &self.chains[edge.predicates.0 as usize..edge.predicates.1 as usize];
            let holds = chain.iter().all(|&p| {
                let p = p as usize;
                let memo = scratch.memo[p];
                if memo >> 1 == stamp {
                    return memo & 1 == 1;
                }
                let predicate = &self.predicates[p];
                let holds = predicate.holds(&fields[predicate.field]).unwrap_or_else(|| {
                    *verify = true;
                    true
                });
                scratch.memo[p] = (stamp << 1) | u32::from(holds);
                holds
            });
            if holds {
                scratch.visit(child, stamp);
            }
        }
    }
}

impl TrieScratch {
    /// Queue a node for the walk, once per message.
    #[inline]
    fn visit(&mut self, child: usize, stamp: u32) {
        if self.node_seen[child] != stamp {
            self.node_seen[child] = stamp;
            self.stack.push(child);
        }
    }
}

/// The rank of each path in the order the trie tests them, chosen so that the walk visits few nodes: first
/// the paths whose predicates are all plain values (one hash lookup), by how many of their predicates a
/// value selects on average (a path with three tiers selects one child of three; a store among fifty,
/// listed by a thousand policies, selects forty); then paths whose predicates are all found through an
/// index (a range may select many children); then the rest, with more distinct predicates first.
fn path_ranks(predicates: &[Predicate], fields: usize) -> Vec<usize> {
    let mut distinct = vec![0_usize; fields];
    let mut class = vec![0_u8; fields];
    let mut listed: Vec<HashMap<String, usize>> = vec![HashMap::new(); fields];
    for p in predicates {
        distinct[p.field] += 1;
        let exact = p
            .conditions
            .iter()
            .all(|c| matches!(c, Condition::String(_) | Condition::Number(_)));
        let this = if exact {
            0
        } else if p.indexed {
            1
        } else {
            2
        };
        class[p.field] = class[p.field].max(this);
        for c in &p.conditions {
            *listed[p.field]
                .entry(canonical::conditions(std::slice::from_ref(c)).to_string())
                .or_default() += 1;
        }
    }
    // Predicates selected per value, in thousandths, for the plain-value paths.
    let selected: Vec<usize> = listed
        .iter()
        .map(|values| values.values().sum::<usize>() * 1000 / values.len().max(1))
        .collect();
    let mut order: Vec<usize> = (0..fields).collect();
    order.sort_by_key(|&f| {
        let selected = if class[f] == 0 { selected[f] } else { 0 };
        (class[f], selected, std::cmp::Reverse(distinct[f]), f)
    });
    let mut rank = vec![0; fields];
    for (r, &f) in order.iter().enumerate() {
        rank[f] = r;
    }
    rank
}

/// Lay the alternatives (lists of predicate ids) into a trie, their predicates in the order of their
/// paths' ranks, so alternatives that start alike share nodes.
fn lay_out(alternatives: Vec<Vec<Vec<usize>>>, predicates: &[Predicate], rank: &[usize]) -> Vec<Building> {
    let mut building = vec![Building::default()];
    let mut edges: HashMap<(usize, usize), usize> = HashMap::new();
    for (policy, alternatives) in alternatives.into_iter().enumerate() {
        for mut clause in alternatives {
            clause.sort_by_key(|&p| (rank[predicates[p].field], p));
            clause.dedup();
            let mut at = 0;
            for p in clause {
                at = *edges.entry((at, p)).or_insert_with(|| {
                    let child = building.len();
                    building.push(Building::default());
                    building[at].edges.push((p, child));
                    child
                });
            }
            if !building[at].accept.contains(&policy) {
                building[at].accept.push(policy);
            }
        }
    }
    building
}

/// Node `n`'s edges as the finished trie keeps them. A few edges on one path are cheaper to test (each
/// predicate once per message, remembered across nodes) than to look up in hash maps; many edges are found
/// through an index. A tested edge swallows the chain of single-child nodes below it.
fn split_edges(building: &[Building], n: usize, predicates: &[Predicate]) -> Out {
    let chain_member = |n: usize| building[n].accept.is_empty() && building[n].edges.len() == 1;
    let mut per_field: HashMap<usize, usize> = HashMap::new();
    for &(p, _) in &building[n].edges {
        if predicates[p].indexed {
            *per_field.entry(predicates[p].field).or_default() += 1;
        }
    }
    let mut out = Out::default();
    for &(p, child) in &building[n].edges {
        let predicate = &predicates[p];
        if predicate.indexed && per_field[&predicate.field] >= INDEX_MIN_EDGES {
            out.indexed.push((p, child));
            continue;
        }
        let (mut chain, mut end) = (vec![p], child);
        while chain_member(end) {
            let (q, next) = building[end].edges[0];
            chain.push(q);
            end = next;
        }
        out.tested.push((chain, end));
    }
    out
}
