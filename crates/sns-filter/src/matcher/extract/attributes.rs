//! Reading message attributes in the form SNS delivers them, recording those the policies look at.

use std::borrow::Cow;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::super::super::eval::attribute_values;
use super::super::PathTree;
use super::FieldValue;

/// Why an attribute message cannot be read; the same cases as [`crate::Message::from_attributes_json`].
#[derive(Debug)]
pub(in crate::matcher) enum AttributeError {
    Json(serde_json::Error),
    /// The attribute of this name is not `{"Type": ..., "Value": ...}`.
    Shape(String),
}

/// Read message attributes in the form SNS delivers them (or SQS's `DataType`/`StringValue`): every
/// attribute must be well formed, and those the tree knows are recorded.
/// Returns how many attributes the message has (of any type).
pub(in crate::matcher) fn attributes<'a>(
    text: &'a str,
    tree: &PathTree,
    out: &mut Vec<FieldValue<'a>>,
) -> Result<usize, AttributeError> {
    out.clear();
    out.resize(tree.end[0], FieldValue::Absent);
    let parsed: Vec<(Cow<'a, str>, AttributeFields<'a>)> = {
        let mut de = serde_json::Deserializer::from_str(text);
        let map = de
            .deserialize_any(AttributesVisitor)
            .map_err(AttributeError::Json)?;
        de.end().map_err(AttributeError::Json)?;
        map.ok_or_else(|| AttributeError::Shape(String::new()))?
    };
    let count = parsed.len();
    for (name, fields) in parsed {
        // As `Message::from_attributes_json`: `Type` wins over `DataType` when both are there.
        let pick = |a: Option<Option<Cow<'a, str>>>, b: Option<Option<Cow<'a, str>>>| a.or(b).flatten();
        let (Some(data_type), Some(value)) = (
            pick(fields.data_type.0, fields.data_type.1),
            pick(fields.value.0, fields.value.1),
        ) else {
            return Err(AttributeError::Shape(name.into_owned()));
        };
        if let Some(id) = tree.child(0, &name) {
            let values = if data_type.starts_with("Binary") {
                Vec::new()
            } else {
                attribute_values(&data_type, value)
            };
            // No value (Binary, or an empty String.Array) is as good as absent, as in `eval::lookup`.
            out[id] = if values.is_empty() {
                FieldValue::Absent
            } else {
                FieldValue::Values(values)
            };
        }
    }
    Ok(count)
}

/// The fields of one attribute: (`Type`, `DataType`) and (`Value`, `StringValue`); the outer option says
/// whether the key was there, the inner whether it held a string.
#[derive(Default)]
struct AttributeFields<'a> {
    data_type: (Field<'a>, Field<'a>),
    value: (Field<'a>, Field<'a>),
}

/// One field of an attribute: whether the key was there, and whether it held a string.
type Field<'a> = Option<Option<Cow<'a, str>>>;

/// The top level: `None` when it is not an object.
struct AttributesVisitor;

impl<'de> Visitor<'de> for AttributesVisitor {
    type Value = Option<Vec<(Cow<'de, str>, AttributeFields<'de>)>>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of message attributes")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(name) = map.next_key::<MaybeBorrowed<'de>>()? {
            let fields = map.next_value::<AttributeFields<'de>>()?;
            let name = name.0;
            // A repeated attribute replaces the earlier one.
            out.retain(|(n, _): &(Cow<'de, str>, _)| *n != name);
            out.push((name, fields));
        }
        Ok(Some(out))
    }
    skip_shapes!('de; seq, bool, i64, u64, f64, str, unit);
}

impl<'de> de::Deserialize<'de> for AttributeFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AttributeFieldsVisitor)
    }
}

/// An attribute that is not an object has no fields, so it is reported as malformed by the caller.
struct AttributeFieldsVisitor;

impl<'de> Visitor<'de> for AttributeFieldsVisitor {
    type Value = AttributeFields<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a message attribute")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = AttributeFields::default();
        while let Some(key) = map.next_key::<MaybeBorrowed<'de>>()? {
            let slot = match key.0.as_ref() {
                "Type" => &mut fields.data_type.0,
                "DataType" => &mut fields.data_type.1,
                "Value" => &mut fields.value.0,
                "StringValue" => &mut fields.value.1,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value::<StringOrOther<'de>>()?.0);
        }
        Ok(fields)
    }
    skip_shapes!('de; seq, bool, i64, u64, f64, str, unit);
}

/// A string, borrowed from the text when it has no escapes.
struct MaybeBorrowed<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for MaybeBorrowed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor).map(MaybeBorrowed)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// A value that is kept when it is a string and skipped otherwise.
struct StringOrOther<'a>(Option<Cow<'a, str>>);

impl<'de> de::Deserialize<'de> for StringOrOther<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrOtherVisitor).map(StringOrOther)
    }
}

struct StringOrOtherVisitor;

impl<'de> Visitor<'de> for StringOrOtherVisitor {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    skip_shapes!('de; map, seq, bool, i64, u64, f64, unit);
}
