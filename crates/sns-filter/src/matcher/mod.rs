//! Many policies of one scope compiled into one matcher, for the places that filter every message against
//! all of a topic's subscriptions (and for the benchmark against the published engines).
//!
//! Testing policies one by one costs time in proportion to their number. Here each policy is expanded
//! into its alternatives (`$or` multiplied out), each alternative is a list of predicates (one path and
//! that key's conditions), identical predicates are shared, and the alternatives are laid into a trie in a
//! fixed order of paths (the most selective first), so alternatives that start alike are tested once.
//! Where a node has many edges on one path, they are found from the message's value through an index
//! (`index.rs`: hash maps for values, affix lookups, a segment tree for numeric ranges); other edges are
//! tested, each predicate at most once per message, and chains of single-child nodes are collapsed into
//! one edge. The message itself is read in one streaming pass that keeps only the values at the paths the
//! policies mention.
//!
//! That is the trie (`trie.rs`, `index.rs`). From 65 to 4,096 alternatives a second engine is chosen by
//! default: one bit per alternative and per path a few lookups that give bitsets (`bits.rs`, built in
//! `bits/build.rs`), whose cost per message does not grow with the number of matches as the trie walk's
//! does.
//!
//! The result is exactly `Policy::matches` for each policy, with either engine (property and boundary
//! tests hold both to that).

mod bits;
mod extract;
mod index;
mod trie;

use std::collections::HashMap;

use super::{Branch, Condition, Message, MessageError, Node, Policy, PolicyError, Scope, canonical};
use extract::FieldValue;

/// How a matcher runs its policies. Both give the same answers; they differ in cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// The trie for up to 64 alternatives (policies with `$or` multiplied out), where it is a little
    /// faster; bitsets up to 4,096; the trie above.
    #[default]
    Auto,
    /// The trie of alternatives: work grows with the nodes a message reaches.
    Trie,
    /// One bit per alternative: work grows with the number of alternatives over 64, not with the matches.
    /// Falls back to the trie past its limits.
    Bitsets,
}

/// [`Engine::Auto`] takes the bitsets above this many alternatives (one word): measured with `make bench`,
/// the trie is 5-15% faster on sets of ten policies, the bitsets faster from a hundred broad ones on, and
/// up to 2.6 times as fast at a thousand.
const AUTO_BITSETS_FROM: usize = 64;

/// The compiled form.
#[derive(Debug)]
enum Compiled {
    Trie(trie::Trie),
    Bits(bits::Bits),
}

/// Working memory for [`Matcher::matching`]; keep one per thread and reuse it. Made for one matcher: given
/// to another, it is made anew for that one.
#[derive(Debug)]
pub struct Scratch {
    /// The engine and policy count it was made for.
    made_for: (Engine, usize),
    trie: trie::TrieScratch,
    bits: bits::BitsScratch,
    out: Vec<usize>,
}

/// The paths the policies read, as a tree: node 0 is the message itself, every other node one key under
/// its parent. Nodes are numbered depth first, so the nodes below `n` are `n + 1 .. end[n]`.
#[derive(Debug, Default)]
struct PathTree {
    children: Vec<Vec<(Box<str>, usize)>>,
    end: Vec<usize>,
}

impl PathTree {
    fn child(&self, node: usize, key: &str) -> Option<usize> {
        self.children[node]
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, id)| *id)
    }

    /// Build from the key paths in use, numbering depth first.
    fn build(paths: &[Vec<String>]) -> (Self, HashMap<Vec<String>, usize>) {
        #[derive(Default)]
        struct Building(std::collections::BTreeMap<String, Building>);
        let mut root = Building::default();
        for path in paths {
            let mut at = &mut root;
            for key in path {
                at = at.0.entry(key.clone()).or_default();
            }
        }
        let mut tree = Self::default();
        let mut ids = HashMap::new();
        fn number(
            b: &Building,
            path: &mut Vec<String>,
            tree: &mut PathTree,
            ids: &mut HashMap<Vec<String>, usize>,
        ) {
            let id = tree.children.len();
            tree.children.push(Vec::new());
            tree.end.push(0);
            ids.insert(path.clone(), id);
            for (key, child) in &b.0 {
                path.push(key.clone());
                let child_id = tree.children.len();
                number(child, path, tree, ids);
                path.pop();
                tree.children[id].push((key.as_str().into(), child_id));
            }
            tree.end[id] = tree.children.len();
        }
        number(&root, &mut Vec::new(), &mut tree, &mut ids);
        (tree, ids)
    }
}

/// One alternative of a policy: (path, conditions of that key), all of which must hold.
type Clause<'p> = Vec<(Vec<String>, &'p [Condition])>;

/// Multiply a branch out into its alternatives. SNS's limit of 150 combinations bounds the count.
fn clauses<'p>(branch: &'p Branch, prefix: &[String]) -> Vec<Clause<'p>> {
    let mut out: Vec<Clause<'p>> = vec![Vec::new()];
    let product = |out: Vec<Clause<'p>>, alternatives: Vec<Clause<'p>>| -> Vec<Clause<'p>> {
        out.iter()
            .flat_map(|left| {
                alternatives.iter().map(move |right| {
                    let mut both = left.clone();
                    both.extend(right.iter().cloned());
                    both
                })
            })
            .collect()
    };
    for (key, node) in &branch.keys {
        let mut path = prefix.to_vec();
        path.push(key.clone());
        match node {
            Node::Conditions(conditions) => {
                for clause in &mut out {
                    clause.push((path.clone(), conditions.as_slice()));
                }
            }
            Node::Nested(nested) => out = product(out, clauses(nested, &path)),
        }
    }
    for group in &branch.or {
        let alternatives = group.iter().flat_map(|alt| clauses(alt, prefix)).collect();
        out = product(out, alternatives);
    }
    out
}

/// A key's conditions at one path, shared by every policy that has the same.
#[derive(Debug)]
struct Predicate {
    field: usize,
    conditions: Vec<Condition>,
    /// Only conditions the trie finds by value (see `index::indexable`) instead of testing them.
    indexed: bool,
}

impl Predicate {
    /// Whether it holds; `None` when the message cannot say without the exact evaluator (`Ambiguous`).
    fn holds(&self, value: &FieldValue<'_>) -> Option<bool> {
        let any = |f: &dyn Fn(&Condition) -> bool| self.conditions.iter().any(f);
        Some(match value {
            FieldValue::Absent => any(&|c| matches!(c, Condition::Exists(false))),
            FieldValue::Blocked => false,
            FieldValue::Ambiguous => return None,
            FieldValue::Objects => any(&|c| matches!(c, Condition::Exists(true))),
            FieldValue::Values(values) => any(&|c| super::eval::condition_matches_values(c, values)),
        })
    }
}

/// The predicates of a set of policies, identical ones (same path, same canonical conditions) shared under
/// one id.
#[derive(Debug, Default)]
struct Predicates {
    list: Vec<Predicate>,
    ids: HashMap<(usize, String), usize>,
}

impl Predicates {
    /// The id of `conditions` at path `field`, added if new; `indexed` says whether the engine finds such
    /// conditions by value (each engine has its own rule).
    fn intern(&mut self, field: usize, conditions: &[Condition], indexed: fn(&[Condition]) -> bool) -> usize {
        let key = (field, canonical::conditions(conditions).to_string());
        let list = &mut self.list;
        *self.ids.entry(key).or_insert_with(|| {
            list.push(Predicate {
                field,
                conditions: conditions.to_vec(),
                indexed: indexed(conditions),
            });
            list.len() - 1
        })
    }
}

/// A number as a key of the trie's hash indexes: its bits, with -0 as 0 (the two compare equal).
fn number_key(n: f64) -> u64 {
    if n == 0.0 { 0 } else { n.to_bits() }
}

/// Policies of one scope compiled into one matcher. Build once per set of policies; match many messages.
#[derive(Debug)]
pub struct Matcher {
    scope: Scope,
    policies: Vec<Policy>,
    paths: PathTree,
    compiled: Compiled,
}

impl Matcher {
    /// Compile `policies`, which must all be of `scope`. Policy `i` of the list is reported as `i`.
    pub fn new(scope: Scope, policies: Vec<Policy>) -> Result<Self, PolicyError> {
        Self::with_engine(scope, policies, Engine::Auto)
    }

    /// [`Matcher::new`] with a choice of engine (the benchmark and the tests compare them).
    pub fn with_engine(scope: Scope, policies: Vec<Policy>, engine: Engine) -> Result<Self, PolicyError> {
        if let Some(i) = policies.iter().position(|p| p.scope() != scope) {
            return Err(PolicyError {
                path: String::new(),
                rule: format!(
                    "policy {i} is for {} but the matcher is for {scope}",
                    policies[i].scope()
                ),
            });
        }
        let expanded: Vec<Vec<Clause<'_>>> = policies.iter().map(|p| clauses(&p.root, &[])).collect();
        let all_paths: Vec<Vec<String>> = expanded
            .iter()
            .flatten()
            .flatten()
            .map(|(path, _)| path.clone())
            .collect();
        let (paths, ids) = PathTree::build(&all_paths);
        let numbered: Vec<Vec<trie::NumberedClause<'_>>> = expanded
            .iter()
            .map(|alternatives| {
                alternatives
                    .iter()
                    .map(|clause| {
                        clause
                            .iter()
                            .map(|(path, conditions)| (ids[path], *conditions))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let alternatives: usize = numbered.iter().map(Vec::len).sum();
        let bits = match engine {
            Engine::Auto if alternatives > AUTO_BITSETS_FROM => bits::Bits::build(&numbered),
            Engine::Bitsets => bits::Bits::build(&numbered),
            Engine::Auto | Engine::Trie => None,
        };
        let compiled = match bits {
            Some(bits) => Compiled::Bits(bits),
            None => Compiled::Trie(trie::Trie::build(numbered, &paths)),
        };
        Ok(Self {
            scope,
            policies,
            paths,
            compiled,
        })
    }

    /// The scope of every policy in the matcher.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// How many policies it holds.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether it holds no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The engine it runs: [`Engine::Trie`] or [`Engine::Bitsets`].
    pub fn engine(&self) -> Engine {
        match self.compiled {
            Compiled::Trie(_) => Engine::Trie,
            Compiled::Bits(_) => Engine::Bitsets,
        }
    }

    /// Working memory for [`Matcher::matching`]; keep one per thread and reuse it.
    pub fn scratch(&self) -> Scratch {
        let policies = self.policies.len();
        match &self.compiled {
            Compiled::Trie(trie) => Scratch {
                made_for: (Engine::Trie, policies),
                trie: trie.scratch(policies),
                bits: bits::BitsScratch::default(),
                out: Vec::new(),
            },
            Compiled::Bits(bits) => Scratch {
                made_for: (Engine::Bitsets, policies),
                trie: trie::TrieScratch::default(),
                bits: bits.scratch(),
                out: Vec::new(),
            },
        }
    }

    /// The indexes (ascending) of the policies that match a message given as JSON text: the body in
    /// `MessageBody` scope, attributes in the form SNS delivers them in `MessageAttributes` scope.
    pub fn matching<'s>(&self, text: &str, scratch: &'s mut Scratch) -> Result<&'s [usize], MessageError> {
        if scratch.made_for != (self.engine(), self.policies.len()) {
            *scratch = self.scratch();
        }
        let mut fields = Vec::new();
        match self.scope {
            Scope::MessageBody => extract::body(text, &self.paths, &mut fields)?,
            Scope::MessageAttributes => {
                let count = extract::attributes(text, &self.paths, &mut fields).map_err(|e| match e {
                    extract::AttributeError::Json(e) => MessageError::Json(e),
                    extract::AttributeError::Shape(name) => MessageError::Attribute(name),
                })?;
                if count == 0 {
                    // SNS matches no attribute policy against an empty set of attributes (see `eval`).
                    scratch.out.clear();
                    return Ok(&scratch.out);
                }
            }
        }
        let verify = match &self.compiled {
            Compiled::Trie(trie) => trie.run(&fields, &mut scratch.trie, &mut scratch.out),
            Compiled::Bits(bits) => bits.run(&fields, &mut scratch.bits, &mut scratch.out),
        };
        if verify {
            // A list of several objects, or a key with a dot, lies on a path some policy nests into: the
            // engine let those conditions pass, so the candidates are checked one by one against the
            // whole message.
            let message = match self.scope {
                Scope::MessageBody => Message::from_body_json(text)?,
                Scope::MessageAttributes => Message::from_attributes_json(text)?,
            };
            scratch.out.retain(|&i| self.policies[i].matches(&message));
        }
        Ok(&scratch.out)
    }
}

#[cfg(test)]
mod tests;
