//! PostgreSQL `COPY … FROM STDIN` of sea-orm active models: the bulk path of batches and imports.
//!
//! The rows are the same active models the ORM path inserts, so a column's value is decided in one
//! place (`ratings::to_active_model`, `ratings::opened_case`, …); this module only writes them in
//! COPY's text format (tab-separated, `\N` for NULL).

use std::io::Write;

use sea_orm::sqlx::PgConnection;
use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, IdenStatic, Iterable, Value};

use crate::{Result, StoreError};

/// Writes `models` into `table` with one `COPY` and returns the list of columns written (quoted,
/// comma-separated). Every model must set the same columns.
pub(crate) async fn copy_in<A>(conn: &mut PgConnection, table: &str, models: &[A]) -> Result<String>
where
    A: ActiveModelTrait,
{
    let Some(first) = models.first() else {
        return Ok(String::new());
    };
    let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|c| !matches!(first.get(*c), ActiveValue::NotSet))
        .collect();
    let names = columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut buf = Vec::with_capacity(models.len() * 256);
    for model in models {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            match model.get(*column) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => write_value(&mut buf, &v)?,
                ActiveValue::NotSet => {
                    return Err(StoreError::Corrupt(format!(
                        "{table}.{} is not set on every row of a COPY",
                        column.as_str()
                    )));
                }
            }
        }
        buf.push(b'\n');
    }
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} ({names}) FROM STDIN"))
        .await?;
    copy.send(buf).await?;
    copy.finish().await?;
    Ok(names)
}

/// One value in COPY's text format.
fn write_value(buf: &mut Vec<u8>, value: &Value) -> Result<()> {
    const NULL: &[u8] = b"\\N";
    // Writing to a Vec cannot fail.
    let _ = match value {
        Value::Bool(Some(b)) => buf.write_all(if *b { b"t" } else { b"f" }),
        Value::SmallInt(Some(n)) => write!(buf, "{n}"),
        Value::Int(Some(n)) => write!(buf, "{n}"),
        Value::BigInt(Some(n)) => write!(buf, "{n}"),
        Value::String(Some(s)) => {
            escape(buf, s);
            Ok(())
        }
        Value::Json(Some(json)) => {
            escape(buf, &json.to_string());
            Ok(())
        }
        Value::Uuid(Some(id)) => write!(buf, "{id}"),
        Value::ChronoDateTimeUtc(Some(at)) => {
            write!(buf, "{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00"))
        }
        Value::Bool(None)
        | Value::SmallInt(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::String(None)
        | Value::Json(None)
        | Value::Uuid(None)
        | Value::ChronoDateTimeUtc(None) => buf.write_all(NULL),
        other => {
            return Err(StoreError::Corrupt(format!(
                "a value of this type cannot be copied: {other:?}"
            )));
        }
    };
    Ok(())
}

/// Text with COPY's escapes for backslash, tab, newline and carriage return.
fn escape(buf: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            other => buf.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_in_copy_text_format() {
        let cases: [(Value, &str); 8] = [
            (Value::Bool(Some(true)), "t"),
            (Value::SmallInt(Some(-3)), "-3"),
            (
                Value::String(Some("a\tb\\c\nd\re".into())),
                "a\\tb\\\\c\\nd\\re",
            ),
            (Value::String(Some(String::new())), ""),
            (Value::String(None), "\\N"),
            (
                Value::Json(Some(Box::new(serde_json::json!({"k": "制\t度"})))),
                "{\"k\":\"制\\\\t度\"}",
            ),
            (
                Value::ChronoDateTimeUtc(Some(
                    chrono::DateTime::from_timestamp_micros(1_620_266_400_123_456)
                        .unwrap_or_default(),
                )),
                "2021-05-06 02:00:00.123456+00",
            ),
            (Value::Uuid(None), "\\N"),
        ];
        for (value, expected) in cases {
            let mut buf = Vec::new();
            assert!(write_value(&mut buf, &value).is_ok());
            assert_eq!(String::from_utf8_lossy(&buf), expected, "{value:?}");
        }
        let mut buf = Vec::new();
        assert!(write_value(&mut buf, &Value::Double(Some(1.5))).is_err());
    }
}
