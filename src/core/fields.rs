//! Field lookups in parsed JSON objects that do not hash. serde_json's ordered map
//! (`preserve_order`, which keeps a client's field order) hashes every lookup with SipHash,
//! and a request is looked into several times per message; comparing the name with each key of
//! a small object costs less. Keys are unique in a parsed object, so the first match is the one
//! `Map::get` would find.

use serde_json::{Map, Value};

/// Objects up to this many keys are scanned rather than hashed into.
const SCANNED: usize = 16;

/// `get` by field name, without hashing small objects.
pub trait Field {
    /// The value of field `name`: what `Map::get`, or `Value::get` with a string index, gives.
    fn field(&self, name: &str) -> Option<&Value>;
}

impl Field for Map<String, Value> {
    fn field(&self, name: &str) -> Option<&Value> {
        if self.len() > SCANNED {
            return self.get(name);
        }
        self.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

impl Field for Value {
    fn field(&self, name: &str) -> Option<&Value> {
        self.as_object().and_then(|object| object.field(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_get_finds_in_small_and_large_objects() {
        let small = json!({"role": "user", "content": "hi", "name": null});
        let large = Value::Object((0..40).map(|i| (format!("k{i}"), json!(i))).collect());
        for (value, names) in [
            (&small, vec!["role", "content", "name", "missing", ""]),
            (&large, vec!["k0", "k17", "k39", "k40"]),
        ] {
            for name in names {
                assert_eq!(value.field(name), value.get(name), "{name}");
                let object = value.as_object().unwrap();
                assert_eq!(object.field(name), object.get(name), "{name}");
            }
        }
        assert_eq!(json!([1, 2]).field("0"), None);
        assert_eq!(json!("role").field("role"), None);
    }
}
