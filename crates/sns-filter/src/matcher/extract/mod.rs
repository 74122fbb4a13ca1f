//! Reading only what the policies look at: a streaming pass over the message JSON that records the values
//! at the paths of the compiled policies and skips everything else without building it.
//!
//! The result for each path is what the one-policy evaluator would see there (`eval::lookup`): absent,
//! values, or objects. Two more outcomes exist because one pass serves every path at once:
//! - `Blocked`: an ancestor holds a value that is not an object, so a nested policy under it cannot match
//!   (not even `exists: false`, as with the one-policy evaluator);
//! - `Ambiguous`: an ancestor is a list of several objects (or of objects within lists), where a nested
//!   policy must match within one element, or an object has a key with a dot that reaches into the paths
//!   below it (SNS reads `{"a.b": 1}` as `{"a": {"b": 1}}`; see `dotted.rs`). The matcher then lets every
//!   condition there pass and checks the candidates exactly.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::super::eval::Found;
use super::PathTree;

/// The `Visitor` methods of the JSON shapes a visitor does not read: each skips the value (without building
/// it) and gives the visitor's default, "nothing here".
macro_rules! skip_shapes {
    ($de:lifetime; $($shape:ident),+) => { $(skip_shapes!(@ $de $shape);)+ };
    (@ $de:lifetime bool) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ $de:lifetime i64) => {
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ $de:lifetime u64) => {
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ $de:lifetime f64) => {
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ $de:lifetime str) => {
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ $de:lifetime unit) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (@ $de:lifetime seq) => {
        fn visit_seq<A: SeqAccess<$de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
    (@ $de:lifetime map) => {
        fn visit_map<A: MapAccess<$de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

mod attributes;

pub(super) use attributes::{AttributeError, attributes};

/// What the message holds at one path.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum FieldValue<'a> {
    #[default]
    Absent,
    Blocked,
    Ambiguous,
    /// One or more objects (a list of objects counts each).
    Objects,
    Values(Vec<Found<'a>>),
}

/// Set every path strictly below `node` to `value`.
fn set_below<'a>(tree: &PathTree, node: usize, out: &mut [FieldValue<'a>], value: &FieldValue<'a>) {
    for slot in &mut out[node + 1..tree.end[node]] {
        slot.clone_from(value);
    }
}

/// Read a JSON body: the values at every path of `tree` land in `out` (indexed by path id, reset first).
pub(super) fn body<'a>(
    text: &'a str,
    tree: &PathTree,
    out: &mut Vec<FieldValue<'a>>,
) -> Result<(), serde_json::Error> {
    out.clear();
    out.resize(tree.end[0], FieldValue::Absent);
    let mut de = serde_json::Deserializer::from_str(text);
    // A body that is not an object leaves every path absent; it is still read, so bad JSON is an error.
    de.deserialize_any(RootVisitor { tree, out })?;
    de.end()
}

struct RootVisitor<'t, 'o, 'a> {
    tree: &'t PathTree,
    out: &'o mut Vec<FieldValue<'a>>,
}

impl<'de> Visitor<'de> for RootVisitor<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_object(self.tree, 0, self.out, map)
    }
    skip_shapes!('de; seq, bool, i64, u64, f64, str, unit);
}

/// The keys of an object under `node`: those the tree knows are read, the rest skipped.
fn read_object<'de, A: MapAccess<'de>>(
    tree: &PathTree,
    node: usize,
    out: &mut [FieldValue<'de>],
    mut map: A,
) -> Result<(), A::Error> {
    let mut dotted = false;
    while let Some(key) = map.next_key_seed(KeySeed { tree, node })? {
        match key {
            Key::Child(child) => {
                // A repeated key replaces what an earlier one left (last wins, as when parsing to a value).
                set_below(tree, child, out, &FieldValue::Absent);
                out[child] = map.next_value_seed(ValueSeed {
                    tree,
                    node: child,
                    out,
                })?;
            }
            Key::Dotted => {
                dotted = true;
                map.next_value::<IgnoredAny>()?;
            }
            Key::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    if dotted {
        set_below(tree, node, out, &FieldValue::Ambiguous);
    }
    Ok(())
}

/// What an object key is to the paths in use.
enum Key {
    /// The child of the object's path with this id.
    Child(usize),
    /// A key with a dot whose first part is a child: it names a path below, which only the exact
    /// evaluator reads (rare in practice).
    Dotted,
    /// Nothing a policy reads.
    Other,
}

/// Finds the child of `node` a key names, without allocating when the key has no escapes.
struct KeySeed<'t> {
    tree: &'t PathTree,
    node: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        if let Some(child) = self.tree.child(self.node, key) {
            return Ok(Key::Child(child));
        }
        let reaches = key
            .split_once('.')
            .is_some_and(|(first, _)| self.tree.child(self.node, first).is_some());
        Ok(if reaches { Key::Dotted } else { Key::Other })
    }
}

/// Reads the value at `node` and says what it is; paths below it are filled in as a side effect.
struct ValueSeed<'t, 'o, 'a> {
    tree: &'t PathTree,
    node: usize,
    out: &'o mut [FieldValue<'a>],
}

impl ValueSeed<'_, '_, '_> {
    /// A scalar here: nested paths below cannot match.
    fn scalar<'a>(self, found: Found<'a>) -> FieldValue<'a> {
        if self.tree.end[self.node] > self.node + 1 {
            set_below(self.tree, self.node, self.out, &FieldValue::Blocked);
        }
        FieldValue::Values(vec![found])
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, 'de> {
    type Value = FieldValue<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, 'de> {
    type Value = FieldValue<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.scalar(Found::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.scalar(Found::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(self.scalar(Found::Str(Cow::Owned(v))))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        #[allow(clippy::cast_precision_loss)] // as serde_json's own as_f64
        Ok(self.scalar(Found::Num(v as f64)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        #[allow(clippy::cast_precision_loss)]
        Ok(self.scalar(Found::Num(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.scalar(Found::Num(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.scalar(Found::Bool(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.scalar(Found::Null))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_object(self.tree, self.node, self.out, map)?;
        Ok(FieldValue::Objects)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A list is transparent (as in `eval::lookup`): its values, and those of lists within it, are values
        // of this path; its objects are objects here, contexts for the paths below. The first object of the
        // list itself is read into those paths; with more (or with objects inside inner lists) they are
        // ambiguous.
        let nested = self.tree.end[self.node] > self.node + 1;
        let mut values = Vec::new();
        let (mut objects, mut inner_objects) = (0_usize, 0_usize);
        while let Some(is_object) = seq.next_element_seed(ElementSeed {
            tree: self.tree,
            node: self.node,
            out: &mut *self.out,
            descend: nested && objects == 0,
            values: &mut values,
            inner_objects: &mut inner_objects,
        })? {
            objects += usize::from(is_object);
        }
        let all_objects = objects + inner_objects;
        if all_objects == 0 {
            if values.is_empty() {
                // An empty list is as good as an absent key.
                return Ok(FieldValue::Absent);
            }
            if nested {
                set_below(self.tree, self.node, self.out, &FieldValue::Blocked);
            }
            return Ok(FieldValue::Values(values));
        }
        if nested && (objects > 1 || inner_objects > 0) {
            set_below(self.tree, self.node, self.out, &FieldValue::Ambiguous);
        }
        if values.is_empty() {
            return Ok(FieldValue::Objects);
        }
        values.extend(std::iter::repeat_n(Found::Other, all_objects));
        Ok(FieldValue::Values(values))
    }
}

/// One element of a list: a value (pushed to `values`, through inner lists) or an object (`true`; read
/// into the paths below only when `descend`: the first object of the list itself).
struct ElementSeed<'t, 'o, 'v, 'a> {
    tree: &'t PathTree,
    node: usize,
    out: &'o mut [FieldValue<'a>],
    descend: bool,
    values: &'v mut Vec<Found<'a>>,
    /// Objects found inside inner lists, which are not read.
    inner_objects: &'v mut usize,
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_, '_, '_, 'de> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElementSeed<'_, '_, '_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        self.values.push(Found::Str(Cow::Borrowed(v)));
        Ok(false)
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        self.values.push(Found::Str(Cow::Owned(v.to_owned())));
        Ok(false)
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        self.values.push(Found::Str(Cow::Owned(v)));
        Ok(false)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        #[allow(clippy::cast_precision_loss)]
        self.values.push(Found::Num(v as f64));
        Ok(false)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        #[allow(clippy::cast_precision_loss)]
        self.values.push(Found::Num(v as f64));
        Ok(false)
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        self.values.push(Found::Num(v));
        Ok(false)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        self.values.push(Found::Bool(v));
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        self.values.push(Found::Null);
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while let Some(is_object) = seq.next_element_seed(ElementSeed {
            tree: self.tree,
            node: self.node,
            out: &mut *self.out,
            descend: false,
            values: &mut *self.values,
            inner_objects: &mut *self.inner_objects,
        })? {
            *self.inner_objects += usize::from(is_object);
        }
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.descend {
            read_object(self.tree, self.node, self.out, map)?;
        } else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        }
        Ok(true)
    }
}
