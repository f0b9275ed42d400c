//! SQLite's bulk insert of sea-orm active models: one multi-row `INSERT … VALUES (…), (…) …` whose
//! values are bound straight from the models, as sea-orm itself binds them (so the stored text of a
//! time or a JSON value is the same on every path), without building a query tree for every row.

use sea_orm::sqlx::Arguments;
use sea_orm::sqlx::sqlite::SqliteArguments;
use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, IdenStatic, Iterable, Value};

use crate::{Result, StoreError};

/// The most parameters one SQLite statement may bind.
const MAX_PARAMS: usize = 32_766;

/// `INSERT INTO table (…) VALUES (…), … {tail}` and its arguments for rows that all set the same
/// columns; `None` for no rows.
pub(crate) fn insert_values<A>(
    table: &str,
    models: Vec<A>,
    tail: &str,
) -> Result<Option<(String, SqliteArguments)>>
where
    A: ActiveModelTrait,
{
    let Some(first) = models.first() else {
        return Ok(None);
    };
    let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|c| !matches!(first.get(*c), ActiveValue::NotSet))
        .collect();
    if columns.len() * models.len() > MAX_PARAMS {
        return Err(StoreError::Corrupt(format!(
            "{table}: {} rows of {} columns are too many for one statement",
            models.len(),
            columns.len()
        )));
    }
    let names: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect();
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
    sql.reserve(models.len() * (row.len() + 2) + tail.len() + 1);
    let mut args = SqliteArguments::default();
    for (i, model) in models.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
        for column in &columns {
            let value = match model.get(*column) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => v,
                ActiveValue::NotSet => {
                    return Err(StoreError::Corrupt(format!(
                        "{table}.{}: not set on every row of a bulk insert",
                        column.as_str()
                    )));
                }
            };
            bind(&mut args, value)
                .map_err(|e| StoreError::Corrupt(format!("{table}.{}: {e}", column.as_str())))?;
        }
    }
    sql.push(' ');
    sql.push_str(tail);
    Ok(Some((sql, args)))
}

/// Binds one value as sea-orm binds it on SQLite (sea-query-sqlx).
fn bind(args: &mut SqliteArguments, value: Value) -> std::result::Result<(), String> {
    let added = match value {
        Value::Bool(v) => args.add(v),
        Value::SmallInt(v) => args.add(v),
        Value::Int(v) => args.add(v),
        Value::BigInt(v) => args.add(v),
        Value::String(v) => args.add(v),
        Value::Json(v) => args.add(v.map(|j| *j)),
        Value::Uuid(v) => args.add(v),
        Value::ChronoDateTimeUtc(v) => args.add(v),
        other => {
            return Err(format!(
                "a value of this type cannot be inserted in bulk: {other:?}"
            ));
        }
    };
    added.map_err(|e| e.to_string())
}
