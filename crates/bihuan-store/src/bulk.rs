//! Bulk inserts of sea-orm active models, straight on sqlx: the batch and import path.
//!
//! The rows are the same active models the ORM path inserts, so a column's value is decided in one
//! place (`ratings::to_active_model`, `ratings::opened_case`, …); this module only lays them out for
//! one statement of many rows:
//! - SQLite: a multi-row `INSERT … VALUES (…), (…) …`, each value bound as sea-orm binds it (so a time
//!   or a JSON value is stored as the same text on every path), with no query tree built per row;
//! - PostgreSQL: `INSERT … SELECT * FROM UNNEST($1, $2, …)` with one array per column, so the statement
//!   (and its plan) is the same whatever the number of rows, and the rows travel in binary. (`COPY`
//!   would be the other way, but sqlx sends its end marker as a separate write, which Nagle's algorithm
//!   and delayed ACKs hold back 40 ms every time.)

use chrono::{DateTime, Utc};
use sea_orm::sqlx::Arguments;
use sea_orm::sqlx::postgres::PgArguments;
use sea_orm::sqlx::sqlite::SqliteArguments;
use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, IdenStatic, Iterable, Value, sqlx};
use uuid::Uuid;

use crate::{Result, StoreError};

/// The most parameters one SQLite statement may bind.
const SQLITE_MAX_PARAMS: usize = 32_766;

type Column<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Column;

/// The columns the first row sets (every row must set the same).
fn set_columns<A: ActiveModelTrait>(first: &A) -> Vec<Column<A>> {
    Column::<A>::iter()
        .filter(|c| !matches!(first.get(*c), ActiveValue::NotSet))
        .collect()
}

/// The value a row sets in a column.
fn value_of<A: ActiveModelTrait>(table: &str, model: &A, column: Column<A>) -> Result<Value> {
    match model.get(column) {
        ActiveValue::Set(v) | ActiveValue::Unchanged(v) => Ok(v),
        ActiveValue::NotSet => Err(StoreError::Corrupt(format!(
            "{table}.{}: not set on every row of a bulk insert",
            column.as_str()
        ))),
    }
}

/// `"a", "b", …`
fn column_list<A: ActiveModelTrait>(columns: &[Column<A>]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQLite: `INSERT INTO table (…) VALUES (…), … {tail}` and its arguments for rows that all set the
/// same columns; `None` for no rows.
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
    let columns = set_columns(first);
    if columns.len() * models.len() > SQLITE_MAX_PARAMS {
        return Err(StoreError::Corrupt(format!(
            "{table}: {} rows of {} columns are too many for one statement",
            models.len(),
            columns.len()
        )));
    }
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    let mut sql = format!(
        "INSERT INTO {table} ({}) VALUES ",
        column_list::<A>(&columns)
    );
    sql.reserve(models.len() * (row.len() + 2) + tail.len() + 1);
    let mut args = SqliteArguments::default();
    for (i, model) in models.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
        for column in &columns {
            bind(&mut args, value_of(table, &model, *column)?)
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
        Value::ChronoDate(v) => args.add(v),
        other => {
            return Err(format!(
                "a value of this type cannot be inserted in bulk: {other:?}"
            ));
        }
    };
    added.map_err(|e| e.to_string())
}

/// One column of many rows, typed.
enum ColumnArray {
    Bool(Vec<Option<bool>>),
    SmallInt(Vec<Option<i16>>),
    Int(Vec<Option<i32>>),
    BigInt(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Json(Vec<Option<serde_json::Value>>),
    Uuid(Vec<Option<Uuid>>),
    Time(Vec<Option<DateTime<Utc>>>),
    Date(Vec<Option<chrono::NaiveDate>>),
}

impl ColumnArray {
    fn for_value(value: &Value, rows: usize) -> Option<Self> {
        Some(match value {
            Value::Bool(_) => Self::Bool(Vec::with_capacity(rows)),
            Value::SmallInt(_) => Self::SmallInt(Vec::with_capacity(rows)),
            Value::Int(_) => Self::Int(Vec::with_capacity(rows)),
            Value::BigInt(_) => Self::BigInt(Vec::with_capacity(rows)),
            Value::String(_) => Self::Text(Vec::with_capacity(rows)),
            Value::Json(_) => Self::Json(Vec::with_capacity(rows)),
            Value::Uuid(_) => Self::Uuid(Vec::with_capacity(rows)),
            Value::ChronoDateTimeUtc(_) => Self::Time(Vec::with_capacity(rows)),
            Value::ChronoDate(_) => Self::Date(Vec::with_capacity(rows)),
            _ => return None,
        })
    }

    /// Appends a value of this column's type; false for a value of another type.
    fn push(&mut self, value: Value) -> bool {
        match (self, value) {
            (Self::Bool(v), Value::Bool(x)) => v.push(x),
            (Self::SmallInt(v), Value::SmallInt(x)) => v.push(x),
            (Self::Int(v), Value::Int(x)) => v.push(x),
            (Self::BigInt(v), Value::BigInt(x)) => v.push(x),
            (Self::Text(v), Value::String(x)) => v.push(x),
            (Self::Json(v), Value::Json(x)) => v.push(x.map(|j| *j)),
            (Self::Uuid(v), Value::Uuid(x)) => v.push(x),
            (Self::Time(v), Value::ChronoDateTimeUtc(x)) => v.push(x),
            (Self::Date(v), Value::ChronoDate(x)) => v.push(x),
            _ => return false,
        }
        true
    }

    fn sql_type(&self) -> &'static str {
        match self {
            Self::Bool(_) => "bool[]",
            Self::SmallInt(_) => "int2[]",
            Self::Int(_) => "int4[]",
            Self::BigInt(_) => "int8[]",
            Self::Text(_) => "text[]",
            Self::Json(_) => "jsonb[]",
            Self::Uuid(_) => "uuid[]",
            Self::Time(_) => "timestamptz[]",
            Self::Date(_) => "date[]",
        }
    }

    fn bind(self, args: &mut PgArguments) -> std::result::Result<(), sqlx::error::BoxDynError> {
        match self {
            Self::Bool(v) => args.add(v),
            Self::SmallInt(v) => args.add(v),
            Self::Int(v) => args.add(v),
            Self::BigInt(v) => args.add(v),
            Self::Text(v) => args.add(v),
            Self::Json(v) => args.add(v),
            Self::Uuid(v) => args.add(v),
            Self::Time(v) => args.add(v),
            Self::Date(v) => args.add(v),
        }
    }
}

/// PostgreSQL: rows regrouped by column, ready to be bound as `UNNEST($1::…[], $2::…[], …)`.
pub(crate) struct Unnest {
    names: String,
    arrays: Vec<ColumnArray>,
}

impl Unnest {
    /// The rows of `table` by column; `None` for no rows. Every row must set the same columns.
    pub(crate) fn of<A>(table: &str, models: Vec<A>) -> Result<Option<Self>>
    where
        A: ActiveModelTrait,
    {
        let Some(first) = models.first() else {
            return Ok(None);
        };
        let columns = set_columns(first);
        let mut arrays = Vec::with_capacity(columns.len());
        for column in &columns {
            let v = value_of(table, first, *column)?;
            arrays.push(ColumnArray::for_value(&v, models.len()).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "{table}.{}: a value of this type cannot be inserted in bulk: {v:?}",
                    column.as_str()
                ))
            })?);
        }
        for model in &models {
            for (column, array) in columns.iter().zip(&mut arrays) {
                if !array.push(value_of(table, model, *column)?) {
                    return Err(StoreError::Corrupt(format!(
                        "{table}.{}: the rows of a bulk insert differ in this column",
                        column.as_str()
                    )));
                }
            }
        }
        Ok(Some(Self {
            names: column_list::<A>(&columns),
            arrays,
        }))
    }

    /// Binds the arrays as the next parameters of `args` and returns the column list `"a", "b", …`
    /// and the row source `UNNEST($n::…[], …) AS alias("a", "b", …)`.
    pub(crate) fn bind(self, alias: &str, args: &mut PgArguments) -> Result<(String, String)> {
        let mut params = Vec::with_capacity(self.arrays.len());
        for array in self.arrays {
            params.push(format!("${}::{}", args.len() + 1, array.sql_type()));
            array
                .bind(args)
                .map_err(|e| StoreError::Corrupt(format!("{alias}: {e}")))?;
        }
        let source = format!("UNNEST({}) AS {alias}({})", params.join(", "), self.names);
        Ok((self.names, source))
    }
}
