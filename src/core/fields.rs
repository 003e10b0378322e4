//! Field lookups in parsed JSON objects that do not hash. serde_json's ordered map
//! (`preserve_order`, which keeps a client's field order) hashes every lookup with SipHash,
//! and a request is looked into several times per message; comparing the name with each key of
//! a small object costs less. Keys are unique in a parsed object, so the first match is the one
//! `Map::get` would find.

use serde_json::{Map, Value};

/// Objects up to this many keys are scanned rather than hashed into.
const SCANNED: usize = 16;

/// `object[name]`, like `Map::get`.
pub fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if object.len() > SCANNED {
        return object.get(name);
    }
    object
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `value[name]` if `value` is an object, like `Value::get` with a string index.
pub fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_object().and_then(|object| field(object, name))
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
                assert_eq!(member(value, name), value.get(name), "{name}");
                let object = value.as_object().unwrap();
                assert_eq!(field(object, name), object.get(name), "{name}");
            }
        }
        assert_eq!(member(&json!([1, 2]), "0"), None);
        assert_eq!(member(&json!("role"), "role"), None);
    }
}
