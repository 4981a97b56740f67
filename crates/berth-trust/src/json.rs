//! Bounded JSON reading: a size cap before parsing, a nesting cap while parsing, and duplicate
//! object keys refused (two parsers must never read one signed document two ways).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::{MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES, Refusal};

/// Parses `bytes` as one JSON document, `what` naming it in refusals.
pub(crate) fn parse(bytes: &[u8], what: &'static str) -> Result<Value, Refusal> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(Refusal::TooLarge {
            what,
            size: bytes.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let too_deep = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = Seed {
        depth: 0,
        too_deep: &too_deep,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| {
        if too_deep.get() {
            Refusal::TooDeep {
                what,
                limit: MAX_JSON_DEPTH,
            }
        } else {
            Refusal::NotJson {
                what,
                error: error.to_string(),
            }
        }
    })
}

/// Deserializes one JSON value `depth` arrays/objects deep.
#[derive(Clone, Copy)]
struct Seed<'a> {
    depth: usize,
    too_deep: &'a Cell<bool>,
}

impl Seed<'_> {
    fn deeper<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            self.too_deep.set(true);
            return Err(E::custom(format_args!(
                "nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        Ok(Seed {
            depth: self.depth + 1,
            too_deep: self.too_deep,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Follows `path` through nested objects.
pub(crate) fn get<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

/// The string at `path`, if there is one.
pub(crate) fn string(value: &Value, path: &[&str]) -> Option<String> {
    get(value, path).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit_is_exact() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(parse(ok.as_bytes(), "payload").is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        assert_eq!(
            parse(deep.as_bytes(), "payload"),
            Err(Refusal::TooDeep {
                what: "payload",
                limit: MAX_JSON_DEPTH
            })
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let refusal = parse(br#"{"a":1,"b":{"c":1,"c":2}}"#, "payload").unwrap_err();
        assert!(
            refusal.to_string().contains("duplicate key \"c\""),
            "{refusal}"
        );
    }

    #[test]
    fn trailing_data_is_refused() {
        assert!(matches!(
            parse(br#"{"a":1} {"a":2}"#, "payload"),
            Err(Refusal::NotJson { .. })
        ));
    }
}
