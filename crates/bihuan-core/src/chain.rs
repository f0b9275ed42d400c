//! The event hash chain (留痕): each event holds the hash of the one before it, so editing any
//! recorded event afterwards is detectable.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The previous hash of a chain's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every recorded part of an event, as hashed.
#[derive(Debug, Clone, Copy)]
pub struct ChainedEvent<'a> {
    /// The case (or work item) the event belongs to.
    pub subject_id: &'a str,
    /// Position in the subject's chain, from 1.
    pub seq: i64,
    /// The action taken.
    pub action: &'a str,
    /// The state before (`None` when opened).
    pub from: Option<&'a str>,
    /// The state after.
    pub to: &'a str,
    /// Who acted.
    pub actor: &'a str,
    /// When, to the microsecond.
    pub at: DateTime<Utc>,
    /// The recorded fields.
    pub fields: &'a Map<String, Value>,
}

/// SHA-256, hex, over the previous hash and the canonical encoding of every part of the event.
pub fn event_hash(prev_hash: &str, event: &ChainedEvent<'_>) -> String {
    let encoded = Value::Array(vec![
        Value::from(prev_hash),
        Value::from(event.subject_id),
        Value::from(event.seq),
        Value::from(event.action),
        event.from.map_or(Value::Null, Value::from),
        Value::from(event.to),
        Value::from(event.actor),
        Value::from(event.at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        Value::Object(event.fields.clone()),
    ]);
    let mut canonical = String::new();
    write_canonical(&encoded, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// The canonical JSON text of a fields object: keys sorted, no spaces. The store keeps fields in this
/// form so that what is hashed and what is stored are the same bytes.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
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
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(fields: &Map<String, Value>) -> ChainedEvent<'_> {
        ChainedEvent {
            subject_id: "case-1",
            seq: 1,
            action: "accept",
            from: Some("received"),
            to: "accepted",
            actor: "zhang",
            at: Utc.with_ymd_and_hms(2021, 5, 6, 2, 0, 0).unwrap(),
            fields,
        }
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,"中"]}}"#).unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"a":{"x":[1,"中"],"y":2},"b":1}"#).unwrap();
        assert_eq!(
            event_hash(GENESIS_HASH, &event(&a)),
            event_hash(GENESIS_HASH, &event(&b))
        );
    }

    #[test]
    fn every_part_of_the_event_changes_the_hash() {
        let fields = Map::new();
        let base = event(&fields);
        let h = event_hash(GENESIS_HASH, &base);
        let mut other_fields = Map::new();
        other_fields.insert("reason".into(), Value::from("x"));
        let variants = [
            ChainedEvent {
                subject_id: "case-2",
                ..base
            },
            ChainedEvent { seq: 2, ..base },
            ChainedEvent {
                action: "transfer",
                ..base
            },
            ChainedEvent { from: None, ..base },
            ChainedEvent {
                to: "closed",
                ..base
            },
            ChainedEvent {
                actor: "li",
                ..base
            },
            ChainedEvent {
                at: base.at + chrono::Duration::microseconds(1),
                ..base
            },
            ChainedEvent {
                fields: &other_fields,
                ..base
            },
        ];
        for v in variants {
            assert_ne!(event_hash(GENESIS_HASH, &v), h, "{v:?}");
        }
        assert_ne!(event_hash(&"1".repeat(64), &base), h);
    }

    #[test]
    fn canonical_json_sorts_keys_and_keeps_unicode() {
        let v: Value = serde_json::from_str(r#"{"z":"不满意","a":[true,null,1.5]}"#).unwrap();
        assert_eq!(canonical_json(&v), r#"{"a":[true,null,1.5],"z":"不满意"}"#);
    }
}
