//! How the per-domain message groups share one tagged JSON object on the wire:
//! `{"type": "...", ...}` with the same `type` names and fields as if every
//! message were a variant of one enum. A message is read once into a map, its
//! `type` says which group's enum reads the rest. No `#[serde(untagged)]` (which
//! would try each group in turn and refuse with "did not match any variant"):
//! an unknown `type` is refused as "unknown variant …, expected one of …"
//! naming every type, at the position of the `type` value, exactly as a single
//! tagged enum would refuse it.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A message read into memory: its `type`, and the whole object (with `type`).
pub(crate) struct Tagged {
    /// The `type` field, one of the known types.
    pub tag: String,
    /// The object, for the group's own enum to read.
    pub body: Value,
}

/// Read one tagged object whose `type` must be one of `types`; `expecting` names
/// the whole message type in refusals (e.g. "internally tagged enum ClientMsg").
pub(crate) fn read<'de, D: Deserializer<'de>>(
    d: D,
    expecting: &'static str,
    types: &'static [&'static str],
) -> Result<Tagged, D::Error> {
    d.deserialize_map(TaggedVisitor { expecting, types })
}

/// Let the group's enum `T` read the object; its refusals keep their words.
pub(crate) fn group<T, E>(tagged: Tagged) -> Result<T, E>
where
    T: serde::de::DeserializeOwned,
    E: de::Error,
{
    T::deserialize(tagged.body).map_err(E::custom)
}

struct TaggedVisitor {
    expecting: &'static str,
    types: &'static [&'static str],
}

impl<'de> Visitor<'de> for TaggedVisitor {
    type Value = Tagged;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tagged, A::Error> {
        let mut fields = Map::new();
        let mut tag = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                if tag.is_some() {
                    return Err(de::Error::duplicate_field("type"));
                }
                let t: String = map.next_value()?;
                // Refused here, so the position is that of the `type` value.
                if !self.types.contains(&t.as_str()) {
                    return Err(de::Error::unknown_variant(&t, self.types));
                }
                fields.insert(key, Value::String(t.clone()));
                tag = Some(t);
            } else {
                let value: Value = map.next_value()?;
                fields.insert(key, value);
            }
        }
        let tag = tag.ok_or_else(|| de::Error::missing_field("type"))?;
        Ok(Tagged {
            tag,
            body: Value::Object(fields),
        })
    }
}
