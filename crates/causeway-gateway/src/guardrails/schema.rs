//! JSON Schema, the subset structured outputs use: `type` (one or several), `enum`, `const`,
//! `properties`, `required`, `additionalProperties` (a boolean or a schema), `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength` (in characters), `minimum`/`maximum` and their
//! exclusive forms, `anyOf`/`allOf`/`oneOf`/`not`, and annotations that change nothing. A schema
//! using any other keyword is refused when the configuration is checked, rather than silently
//! passing what it would have failed.

use serde_json::Value;

/// Keywords that describe and constrain nothing.
const ANNOTATIONS: &[&str] = &["$schema", "$id", "$comment", "title", "description", "default", "examples", "format"];
/// Keywords this validator applies.
const APPLIED: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
];

/// A checked schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema(Value);

impl Schema {
    /// `schema` checked for keywords this validator does not apply (named in the error, with
    /// where they are).
    pub fn new(schema: Value) -> Result<Self, String> {
        check_keywords(&schema, "")?;
        Ok(Self(schema))
    }

    /// The first way `value` breaks the schema: where (a JSON pointer) and what, or `None`.
    pub fn violation(&self, value: &Value) -> Option<String> {
        violation(&self.0, value, "")
    }
}

fn check_keywords(schema: &Value, at: &str) -> Result<(), String> {
    match schema {
        Value::Bool(_) => Ok(()),
        Value::Object(keywords) => {
            for (keyword, inner) in keywords {
                if ANNOTATIONS.contains(&keyword.as_str()) {
                    continue;
                }
                if !APPLIED.contains(&keyword.as_str()) {
                    return Err(format!(
                        "the schema uses `{keyword}` at `{}`, which the gateway does not check yet; it checks {}",
                        if at.is_empty() { "/" } else { at },
                        APPLIED.join(", ")
                    ));
                }
                match keyword.as_str() {
                    "properties" => {
                        for (name, property) in inner.as_object().into_iter().flatten() {
                            check_keywords(property, &format!("{at}/properties/{name}"))?;
                        }
                    }
                    "items" | "not" | "additionalProperties" => check_keywords(inner, &format!("{at}/{keyword}"))?,
                    "anyOf" | "allOf" | "oneOf" => {
                        for (index, branch) in inner.as_array().into_iter().flatten().enumerate() {
                            check_keywords(branch, &format!("{at}/{keyword}/{index}"))?;
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        _ => {
            Err(format!("the schema at `{}` is neither an object nor a boolean", if at.is_empty() { "/" } else { at }))
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(number) if number.as_f64().is_some_and(|float| float.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, expected: &str) -> bool {
    let actual = type_name(value);
    actual == expected || (expected == "number" && actual == "integer")
}

fn place(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}

fn violation(schema: &Value, value: &Value, at: &str) -> Option<String> {
    let keywords = match schema {
        Value::Bool(true) => return None,
        Value::Bool(false) => return Some(format!("at {}: nothing is allowed here", place(at))),
        Value::Object(keywords) => keywords,
        _ => return None,
    };
    if let Some(expected) = keywords.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|name| has_type(value, name)) {
            return Some(format!("at {}: expected {}, found {}", place(at), names.join(" or "), type_name(value)));
        }
    }
    if let Some(Value::Array(allowed)) = keywords.get("enum")
        && !allowed.contains(value)
    {
        return Some(format!("at {}: {value} is not one of {}", place(at), Value::Array(allowed.clone())));
    }
    if let Some(constant) = keywords.get("const")
        && constant != value
    {
        return Some(format!("at {}: expected {constant}", place(at)));
    }
    if let Some(number) = value.as_f64() {
        let bound = |name: &str| keywords.get(name).and_then(Value::as_f64);
        let checks: [(&str, bool); 4] = [
            ("minimum", bound("minimum").is_some_and(|limit| number < limit)),
            ("maximum", bound("maximum").is_some_and(|limit| number > limit)),
            ("exclusiveMinimum", bound("exclusiveMinimum").is_some_and(|limit| number <= limit)),
            ("exclusiveMaximum", bound("exclusiveMaximum").is_some_and(|limit| number >= limit)),
        ];
        if let Some((name, _)) = checks.iter().find(|(_, broken)| *broken) {
            return Some(format!("at {}: {number} breaks {name} {}", place(at), keywords[*name]));
        }
    }
    if let Value::String(text) = value {
        let length = text.chars().count() as u64;
        if keywords.get("minLength").and_then(Value::as_u64).is_some_and(|limit| length < limit) {
            return Some(format!("at {}: shorter than minLength {}", place(at), keywords["minLength"]));
        }
        if keywords.get("maxLength").and_then(Value::as_u64).is_some_and(|limit| length > limit) {
            return Some(format!("at {}: longer than maxLength {}", place(at), keywords["maxLength"]));
        }
    }
    if let Value::Array(items) = value {
        let count = items.len() as u64;
        if keywords.get("minItems").and_then(Value::as_u64).is_some_and(|limit| count < limit) {
            return Some(format!("at {}: fewer items than minItems {}", place(at), keywords["minItems"]));
        }
        if keywords.get("maxItems").and_then(Value::as_u64).is_some_and(|limit| count > limit) {
            return Some(format!("at {}: more items than maxItems {}", place(at), keywords["maxItems"]));
        }
        if let Some(item_schema) = keywords.get("items") {
            for (index, item) in items.iter().enumerate() {
                if let Some(broken) = violation(item_schema, item, &format!("{at}/{index}")) {
                    return Some(broken);
                }
            }
        }
    }
    if let Value::Object(members) = value {
        for name in keywords.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !members.contains_key(name) {
                return Some(format!("at {}: `{name}` is required", place(at)));
            }
        }
        let properties = keywords.get("properties").and_then(Value::as_object);
        for (name, member) in members {
            let inner = format!("{at}/{name}");
            match properties.and_then(|properties| properties.get(name)) {
                Some(property) => {
                    if let Some(broken) = violation(property, member, &inner) {
                        return Some(broken);
                    }
                }
                None => match keywords.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Some(format!("at {}: `{name}` is not allowed", place(at)));
                    }
                    Some(additional) => {
                        if let Some(broken) = violation(additional, member, &inner) {
                            return Some(broken);
                        }
                    }
                    None => {}
                },
            }
        }
    }
    if let Some(Value::Array(branches)) = keywords.get("allOf") {
        for branch in branches {
            if let Some(broken) = violation(branch, value, at) {
                return Some(broken);
            }
        }
    }
    if let Some(Value::Array(branches)) = keywords.get("anyOf")
        && !branches.iter().any(|branch| violation(branch, value, at).is_none())
    {
        return Some(format!("at {}: matches none of anyOf", place(at)));
    }
    if let Some(Value::Array(branches)) = keywords.get("oneOf") {
        let matching = branches.iter().filter(|branch| violation(branch, value, at).is_none()).count();
        if matching != 1 {
            return Some(format!("at {}: matches {matching} of oneOf, not exactly one", place(at)));
        }
    }
    if let Some(negated) = keywords.get("not")
        && violation(negated, value, at).is_none()
    {
        return Some(format!("at {}: matches what `not` forbids", place(at)));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn structured_outputs_are_checked_and_unknown_keywords_refused() {
        let schema = Schema::new(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}
            },
            "required": ["name", "age"],
            "additionalProperties": false
        }))
        .expect("a schema");
        assert_eq!(schema.violation(&json!({"name": "Ada", "age": 36, "tags": ["a"]})), None);
        let broken = |value: Value| schema.violation(&value).unwrap_or_default();
        assert_eq!(broken(json!({"name": "Ada"})), "at /: `age` is required");
        assert_eq!(broken(json!({"name": "Ada", "age": 3.5})), "at /age: expected integer, found number");
        assert_eq!(broken(json!({"name": "Ada", "age": -1})), "at /age: -1 breaks minimum 0");
        assert_eq!(
            broken(json!({"name": "Ada", "age": 1, "tags": ["c"]})),
            "at /tags/0: \"c\" is not one of [\"a\",\"b\"]"
        );
        assert_eq!(broken(json!({"name": "Ada", "age": 1, "x": 1})), "at /: `x` is not allowed");
        assert_eq!(broken(json!([1])), "at /: expected object, found array");
        let refused = Schema::new(json!({"type": "string", "pattern": "^a"})).expect_err("pattern");
        assert!(refused.contains("uses `pattern` at `/`"), "{refused}");
        let either = Schema::new(json!({"anyOf": [{"type": "string"}, {"type": "null"}]})).expect("schema");
        assert_eq!(either.violation(&json!(null)), None);
        assert!(either.violation(&json!(1)).is_some());
    }
}
