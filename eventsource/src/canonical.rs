//! Canonical forms for comparing stores: JSON text with object keys sorted at every
//! level, so that stores that keep keys in different orders (PostgreSQL's `JSONB` sorts
//! them) compare and checksum alike, and a stable hash.

use serde_json::Value;

/// FNV-1a, 64 bits: a stable hash (not keyed per process like std's).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(0xcbf2_9ce4_8422_2325, bytes)
}

/// Continues an FNV-1a hash over more bytes.
pub(crate) fn fnv1a_extend(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// JSON with object keys sorted at every level, so that stores that keep keys in
/// different orders (JSONB sorts them) checksum alike.
pub(crate) fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[{"y":1,"x":2}],"c":null}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}"#).unwrap();
        let (mut x, mut y) = (String::new(), String::new());
        canonical_json(&a, &mut x);
        canonical_json(&b, &mut y);
        assert_eq!(x, y);
        assert_eq!(x, r#"{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}"#);
    }
}
