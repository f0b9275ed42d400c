//! PostgreSQL's bulk insert of sea-orm active models: one `INSERT … SELECT * FROM UNNEST($1, $2, …)`
//! with one array parameter per column, so the statement (and its plan) is the same whatever the number
//! of rows, and the rows travel in binary.
//!
//! The rows are the same active models the ORM path inserts, so a column's value is decided in one
//! place (`ratings::to_active_model`, `ratings::opened_case`, …); this module only regroups them by
//! column. (`COPY` would be the other bulk path, but sqlx sends its end marker as a separate write,
//! which Nagle's algorithm and delayed ACKs hold back 40 ms every time.)

use chrono::{DateTime, Utc};
use sea_orm::sqlx::Arguments;
use sea_orm::sqlx::postgres::PgArguments;
use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, IdenStatic, Iterable, Value, sqlx};
use uuid::Uuid;

use crate::{Result, StoreError};

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
        }
    }
}

/// Rows regrouped by column, ready to be bound as `UNNEST($1::…[], $2::…[], …)`.
pub(crate) struct Unnest {
    columns: Vec<(String, ColumnArray)>,
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
        let rows = models.len();
        let mut columns = Vec::new();
        for column in <A::Entity as EntityTrait>::Column::iter() {
            if let ActiveValue::Set(v) | ActiveValue::Unchanged(v) = first.get(column) {
                let array = ColumnArray::for_value(&v, rows).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{table}.{}: a value of this type cannot be inserted in bulk: {v:?}",
                        column.as_str()
                    ))
                })?;
                columns.push((column, array));
            }
        }
        for model in models {
            for (column, array) in &mut columns {
                let fits = match model.get(*column) {
                    ActiveValue::Set(v) | ActiveValue::Unchanged(v) => array.push(v),
                    ActiveValue::NotSet => false,
                };
                if !fits {
                    return Err(StoreError::Corrupt(format!(
                        "{table}.{}: the rows of a bulk insert differ in this column",
                        column.as_str()
                    )));
                }
            }
        }
        Ok(Some(Self {
            columns: columns
                .into_iter()
                .map(|(c, a)| (format!("\"{}\"", c.as_str()), a))
                .collect(),
        }))
    }

    /// Binds the arrays as the next parameters of `args` and returns the column list `"a", "b", …`
    /// and the row source `UNNEST($n::…[], …) AS alias("a", "b", …)`.
    pub(crate) fn bind(self, alias: &str, args: &mut PgArguments) -> Result<(String, String)> {
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        let names = names.join(", ");
        let mut params = Vec::with_capacity(self.columns.len());
        for (name, array) in self.columns {
            params.push(format!("${}::{}", args.len() + 1, array.sql_type()));
            array
                .bind(args)
                .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?;
        }
        let source = format!("UNNEST({}) AS {alias}({names})", params.join(", "));
        Ok((names, source))
    }
}
