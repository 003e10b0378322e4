//! JSON Schema (what OpenAI clients send in `tools[].function.parameters` and
//! `response_format.json_schema.schema`) → Gemini's `Schema`, the OpenAPI 3.0 subset that
//! `functionDeclarations[].parameters` and `generationConfig.responseSchema` accept.
//!
//! Why `parameters` and not `parametersJsonSchema`: the plain-JSON-Schema fields are newer and
//! their support is per model (gemini.md §2.2, mapping.md §6.9), while a route may name any
//! Gemini model, 2.0 included, and an unsupported field is a 400 on every request. The cleaned
//! `parameters` work on every model, and what cleaning drops (`additionalProperties`,
//! `exclusiveMinimum`, `$schema`, …) are constraints the Developer API neither enforces nor
//! needs to shape the call; types, properties, `required`, enums and descriptions all survive.
//!
//! The recipe (mapping.md §6): resolve `$ref` into `$defs`/`definitions` (a cycle becomes `{}`,
//! as python-genai does); `anyOf`/`oneOf` with a `null` branch and `type: [T, "null"]` become
//! `nullable`; `allOf` is merged; `const` becomes a one-value `enum`; enums keep only non-empty
//! strings; `format` keeps only the values Gemini knows; every other keyword is dropped (an
//! allow-list, as LiteLLM does, so keywords invented later cannot cause a 400); objects get
//! `type: object`; `required` keeps only declared properties; empty `properties` are removed.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::core::fields::Field;

type Obj = Map<String, Value>;

/// Nesting deeper than this is cut off (it also bounds pathological inputs).
const MAX_DEPTH: usize = 32;

/// The most one request's schemas may cost once cleaned, in units of about a byte of output.
/// Gemini takes no `$ref`, so references are inlined, and definitions that refer to each other
/// several times per level grow exponentially: a 1.6 KB schema can expand to 150 MB. Real tool
/// sets cost a few tens of thousands.
pub const MAX_COST: usize = 1_000_000;

/// What one converted node costs besides the text it copies.
const NODE_COST: usize = 32;

/// What is left of a request's [`MAX_COST`], shared by all its schemas.
#[derive(Debug)]
pub struct Budget {
    left: usize,
}

impl Budget {
    /// A whole request's budget.
    pub fn new() -> Self {
        Self { left: MAX_COST }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

/// A schema that would cost more than what is left of the request's [`Budget`].
#[derive(Debug, PartialEq, Eq)]
pub struct TooLarge;

/// Keywords copied as they are.
const COPIED: [&str; 9] = [
    "description",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
];

/// The Gemini schema for `schema`; `ordering` adds `propertyOrdering` (the declared key order)
/// to objects, which structured output uses to keep the answer's keys in that order.
/// Fails, having done at most `budget`'s worth of work, when the result would cost more.
pub fn clean(schema: &Value, ordering: bool, budget: &mut Budget) -> Result<Value, TooLarge> {
    let mut defs: HashMap<&str, &Value> = HashMap::new();
    for key in ["definitions", "$defs"] {
        if let Some(Value::Object(d)) = schema.get(key) {
            defs.extend(d.iter().map(|(k, v)| (k.as_str(), v)));
        }
    }
    let mut cx = Context {
        defs: &defs,
        stack: Vec::new(),
        ordering,
        budget,
        exhausted: false,
    };
    let cleaned = cx.convert(schema, 0);
    if cx.exhausted {
        return Err(TooLarge);
    }
    Ok(Value::Object(cleaned))
}

struct Context<'a, 'b> {
    defs: &'a HashMap<&'a str, &'a Value>,
    /// `$ref` names being expanded, to stop cycles.
    stack: Vec<String>,
    ordering: bool,
    budget: &'b mut Budget,
    /// The budget ran out: the rest is skipped and the result discarded.
    exhausted: bool,
}

/// What converting `obj` costs: the node and the text it copies.
fn cost(obj: &Obj) -> usize {
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map_or(0, str::len);
    let list = |key: &str| {
        obj.get(key).and_then(Value::as_array).map_or(0, |values| {
            values
                .iter()
                .map(|v| v.as_str().map_or(8, |s| s.len() + 8))
                .sum()
        })
    };
    NODE_COST
        + text("description")
        + text("pattern")
        + text("const")
        + list("enum")
        + list("required")
}

fn is_null_schema(v: &Value) -> bool {
    v.field("type").and_then(Value::as_str) == Some("null")
}

impl Context<'_, '_> {
    fn convert(&mut self, node: &Value, depth: usize) -> Obj {
        let Some(obj) = node.as_object() else {
            // `true` / `{}`-like schemas: anything goes.
            return Obj::new();
        };
        if depth > MAX_DEPTH || self.exhausted {
            return Obj::new();
        }
        match self.budget.left.checked_sub(cost(obj)) {
            Some(left) => self.budget.left = left,
            None => {
                self.exhausted = true;
                return Obj::new();
            }
        }
        if let Some(reference) = obj.field("$ref").and_then(Value::as_str) {
            return self.reference(reference, obj, depth);
        }
        let mut out = Obj::new();
        let mut nullable = obj.field("nullable") == Some(&Value::Bool(true));
        match obj.field("type") {
            Some(Value::String(t)) if t == "null" => nullable = true,
            Some(Value::String(t)) => {
                out.insert("type".into(), t.as_str().into());
            }
            Some(Value::Array(types)) => {
                // A type list fails with "Proto field is not repeating, cannot start list".
                let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                nullable |= names.contains(&"null");
                let real: Vec<&str> = names.into_iter().filter(|t| *t != "null").collect();
                match real.as_slice() {
                    [] => {}
                    [one] => {
                        out.insert("type".into(), (*one).into());
                    }
                    many => {
                        let branches = many.iter().map(|t| json!({ "type": t })).collect();
                        out.insert("anyOf".into(), Value::Array(branches));
                    }
                }
            }
            _ => {}
        }
        let alternatives: Vec<&Value> = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| obj.get(*k).and_then(Value::as_array))
            .flatten()
            .collect();
        if !alternatives.is_empty() {
            let mut branches = Vec::new();
            for alt in alternatives {
                if is_null_schema(alt) {
                    nullable = true;
                } else {
                    branches.push(self.convert(alt, depth + 1));
                }
            }
            if branches.len() == 1 {
                // `anyOf: [X, null]` is X, nullable: the single branch's keywords move up.
                for (k, v) in branches.swap_remove(0) {
                    out.entry(k).or_insert(v);
                }
            } else if !branches.is_empty() {
                out.insert(
                    "anyOf".into(),
                    Value::Array(branches.into_iter().map(Value::Object).collect()),
                );
            }
        }
        for key in COPIED {
            if let Some(v) = obj.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        if let Some(p) = obj.field("pattern").filter(|p| p.is_string()) {
            out.insert("pattern".into(), p.clone());
        }
        self.enumeration(obj, &mut out);
        self.format(obj, &mut out);
        if let Some(Value::Object(props)) = obj.field("properties") {
            let converted: Obj = props
                .iter()
                .map(|(k, v)| (k.clone(), Value::Object(self.convert(v, depth + 1))))
                .collect();
            if !converted.is_empty() {
                out.insert("properties".into(), Value::Object(converted));
            }
        }
        if let Some(items) = obj.field("items").filter(|i| i.is_object()) {
            out.insert(
                "items".into(),
                Value::Object(self.convert(items, depth + 1)),
            );
        }
        if let Some(Value::Array(required)) = obj.field("required") {
            out.insert("required".into(), Value::Array(required.clone()));
        }
        if let Some(Value::Array(all)) = obj.field("allOf") {
            for sub in all {
                let sub = self.convert(sub, depth + 1);
                merge(&mut out, sub);
            }
        }
        self.finish(&mut out, nullable);
        out
    }

    fn reference(&mut self, reference: &str, obj: &Obj, depth: usize) -> Obj {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"));
        let defs = self.defs;
        let mut out = match name.and_then(|n| defs.get(n).map(|d| (n, *d))) {
            Some((n, def)) if !self.stack.iter().any(|s| s == n) => {
                self.stack.push(n.to_owned());
                let out = self.convert(def, depth + 1);
                self.stack.pop();
                out
            }
            // An unknown or recursive reference: Gemini cannot express it, so anything goes.
            _ => Obj::new(),
        };
        if let Some(d) = obj.field("description") {
            out.insert("description".into(), d.clone());
        }
        out
    }

    /// `enum` (strings only, no empty strings) and `const` as a one-value enum.
    fn enumeration(&self, obj: &Obj, out: &mut Obj) {
        let mut values: Vec<Value> = Vec::new();
        if let Some(Value::Array(list)) = obj.field("enum") {
            values.extend(
                list.iter()
                    .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                    .cloned(),
            );
        }
        if let Some(c) = obj
            .field("const")
            .filter(|c| c.as_str().is_some_and(|s| !s.is_empty()))
        {
            values.push(c.clone());
        }
        if !values.is_empty() {
            out.entry("type").or_insert_with(|| "string".into());
            out.insert("enum".into(), Value::Array(values));
        }
    }

    /// `format`, kept only where Gemini knows the value.
    fn format(&self, obj: &Obj, out: &mut Obj) {
        let Some(format) = obj.field("format").and_then(Value::as_str) else {
            return;
        };
        let kind = obj.field("type").and_then(Value::as_str).unwrap_or("");
        let known = match kind {
            "string" => matches!(format, "enum" | "date-time"),
            "integer" => matches!(format, "int32" | "int64"),
            "number" => matches!(format, "float" | "double"),
            _ => false,
        };
        if known {
            out.insert("format".into(), format.into());
        }
    }

    fn finish(&self, out: &mut Obj, nullable: bool) {
        if !out.contains_key("type") && !out.contains_key("anyOf") {
            if out.contains_key("properties") {
                out.insert("type".into(), "object".into());
            } else if out.contains_key("items") {
                out.insert("type".into(), "array".into());
            }
        }
        // `required` may only name declared properties (Gemini rejects the others).
        let declared: Vec<String> = match out.field("properties") {
            Some(Value::Object(p)) => p.keys().cloned().collect(),
            _ => Vec::new(),
        };
        if let Some(Value::Array(required)) = out.get_mut("required") {
            required.retain(|r| r.as_str().is_some_and(|r| declared.iter().any(|d| d == r)));
            let mut seen = Vec::new();
            required.retain(|r| {
                let fresh = !seen.contains(r);
                seen.push(r.clone());
                fresh
            });
        }
        if out
            .field("required")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            out.remove("required");
        }
        if self.ordering && declared.len() > 1 {
            let order = declared.into_iter().map(Value::from).collect();
            out.insert("propertyOrdering".into(), Value::Array(order));
        }
        if nullable {
            out.insert("nullable".into(), true.into());
        }
    }
}

/// Merges an `allOf` branch: properties and `required` are united, other keywords kept
/// where the node has none.
fn merge(out: &mut Obj, sub: Obj) {
    for (k, v) in sub {
        match (k.as_str(), out.get_mut(&k), v) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (pk, pv) in theirs {
                    mine.entry(pk).or_insert(pv);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => mine.extend(theirs),
            (_, Some(_), _) => {}
            (_, None, v) => {
                out.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cleans with a whole request's budget, which these schemas never exhaust.
    fn clean(schema: &Value, ordering: bool) -> Value {
        super::clean(schema, ordering, &mut Budget::new()).unwrap()
    }

    #[test]
    fn the_openai_weather_schema_passes_unchanged() {
        let schema = json!({
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            },
            "required": ["location"]
        });
        assert_eq!(clean(&schema, false), schema);
    }

    #[test]
    fn keywords_gemini_rejects_are_removed() {
        // The keywords named in the 400s quoted in gemini.md §2.2.
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": "x", "$comment": "c", "title": "T",
            "type": "object", "additionalProperties": false, "strict": true,
            "propertyNames": {"pattern": "^[a-z]+$"},
            "patternProperties": {"^x": {"type": "string"}},
            "properties": {
                "n": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10, "minimum": 1,
                      "examples": [3], "default": 2, "format": "int64"},
                "s": {"type": "string", "format": "email", "pattern": "^a", "minLength": 1},
                "list": {"type": "array", "items": {"anyOf": [
                    {"type": "object", "additionalProperties": false, "properties": {"k": {"const": "v"}}},
                    {"type": "string", "not": {"const": "x"}}
                ]}}
            },
            "required": ["n", "ghost", "n"]
        });
        assert_eq!(
            clean(&schema, false),
            json!({
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "minimum": 1, "format": "int64"},
                    "s": {"type": "string", "pattern": "^a", "minLength": 1},
                    "list": {"type": "array", "items": {"anyOf": [
                        {"type": "object", "properties": {"k": {"type": "string", "enum": ["v"]}}},
                        {"type": "string"}
                    ]}}
                },
                "required": ["n"]
            })
        );
    }

    #[test]
    fn nullables_in_every_spelling() {
        let schema = json!({"type": "object", "properties": {
            "a": {"anyOf": [{"type": "string", "description": "A"}, {"type": "null"}]},
            "b": {"type": ["integer", "null"]},
            "c": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]},
            "d": {"type": ["string", "number"]}
        }});
        assert_eq!(
            clean(&schema, false)["properties"],
            json!({
                "a": {"type": "string", "description": "A", "nullable": true},
                "b": {"type": "integer", "nullable": true},
                "c": {"anyOf": [{"type": "string"}, {"type": "number"}], "nullable": true},
                "d": {"anyOf": [{"type": "string"}, {"type": "number"}]}
            })
        );
    }

    #[test]
    fn refs_are_inlined_and_cycles_cut() {
        let schema = json!({
            "type": "object",
            "$defs": {
                "Unit": {"type": "string", "enum": ["celsius", "fahrenheit", ""]},
                "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}, "v": {"type": "integer", "enum": [1, 2]}}}
            },
            "definitions": {"Old": {"type": "boolean"}},
            "properties": {
                "unit": {"$ref": "#/$defs/Unit", "description": "which unit"},
                "tree": {"$ref": "#/$defs/Node"},
                "old": {"$ref": "#/definitions/Old"},
                "missing": {"$ref": "#/$defs/Nope"}
            }
        });
        assert_eq!(
            clean(&schema, false)["properties"],
            json!({
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "which unit"},
                "tree": {"type": "object", "properties": {"next": {}, "v": {"type": "integer"}}},
                "old": {"type": "boolean"},
                "missing": {}
            })
        );
    }

    #[test]
    fn all_of_merges_and_objects_get_their_type() {
        let schema = json!({"allOf": [
            {"properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"items": {"type": "string"}}}, "required": ["b"]}
        ], "properties": {}});
        assert_eq!(
            clean(&schema, false),
            json!({"properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "string"}}},
                   "required": ["a", "b"], "type": "object"})
        );
        // Empty properties go (some models reject them); the object type stays.
        assert_eq!(
            clean(&json!({"type": "object", "properties": {}}), false),
            json!({"type": "object"})
        );
    }

    #[test]
    fn structured_output_gets_property_ordering() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
                            "required": ["city", "population"], "additionalProperties": false});
        assert_eq!(
            clean(&schema, true),
            json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
                   "required": ["city", "population"], "propertyOrdering": ["city", "population"]})
        );
    }

    #[test]
    fn odd_inputs_do_not_panic_and_depth_is_bounded() {
        for v in [
            json!(true),
            json!(null),
            json!([1]),
            json!({"type": 5, "enum": "x", "required": "a"}),
        ] {
            let _ = clean(&v, true);
        }
        let mut deep = json!({"type": "string"});
        for _ in 0..200 {
            deep = json!({"type": "array", "items": deep});
        }
        let out = clean(&deep, false).to_string();
        assert!(out.matches("items").count() <= MAX_DEPTH + 1);
    }
}
