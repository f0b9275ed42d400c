//! Domain enums stored as their text codes (`dissatisfied`, `unit_staff`, `pending` …).
//!
//! An entity column of type [`Code<T>`] is parsed when its row is read, once, at the store's edge: an
//! unknown stored value (a hand-edited row, a value from a newer version) fails the read with
//! [`StoreError::Corrupt`](crate::StoreError::Corrupt) naming the column's kind and the value, instead of
//! being shown raw or taken for a default. The codes are the ones the API and the migrations use, so the
//! columns keep their text type.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bihuan_core::Role;
use bihuan_core::plan::Owed;
use bihuan_core::rating::{Channel, Level, RaterType};
use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, StringLen, ValueType, ValueTypeErr};
use sea_orm::{ColIdx, DbErr, QueryResult, TryFromU64, TryGetError, TryGetable, Value};

/// A closed set of values with a stable text code each.
pub trait StoredCode: Copy + fmt::Debug + PartialEq + Send + Sync + 'static {
    /// What the values are, for errors: `rating level`.
    const WHAT: &'static str;
    /// The stored code.
    fn code(self) -> &'static str;
    /// The value of a stored code, exactly as [`StoredCode::code`] writes it (no aliases, no labels).
    fn from_code(code: &str) -> Option<Self>;
}

/// A column holding a [`StoredCode`] value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code<T>(pub T);

impl<T> Deref for Code<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Code<T> {
    fn from(value: T) -> Self {
        Code(value)
    }
}

impl<T: StoredCode> fmt::Display for Code<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.code())
    }
}

impl<T: StoredCode> serde::Serialize for Code<T> {
    /// As its code, the same text the API documents.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.code())
    }
}

/// A stored code that names no known value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {what} `{value}` is not a known value")]
pub struct UnknownCode {
    /// What kind of value was expected.
    pub what: &'static str,
    /// The stored text.
    pub value: String,
}

/// Parses a stored code, or says which kind of value it failed to be.
pub fn parse_code<T: StoredCode>(text: &str) -> Result<T, UnknownCode> {
    T::from_code(text).ok_or_else(|| UnknownCode {
        what: T::WHAT,
        value: text.to_owned(),
    })
}

impl<T: StoredCode> From<Code<T>> for Value {
    fn from(code: Code<T>) -> Self {
        Value::String(Some(code.0.code().to_owned()))
    }
}

impl<T: StoredCode> TryGetable for Code<T> {
    fn try_get_by<I: ColIdx>(res: &QueryResult, idx: I) -> Result<Self, TryGetError> {
        let text = String::try_get_by(res, idx)?;
        parse_code(&text).map(Code).map_err(|e| {
            TryGetError::DbErr(DbErr::TryIntoErr {
                from: "String",
                into: T::WHAT,
                source: Arc::new(e),
            })
        })
    }
}

impl<T: StoredCode> ValueType for Code<T> {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        let text = <String as ValueType>::try_from(v)?;
        T::from_code(&text).map(Code).ok_or(ValueTypeErr)
    }

    fn type_name() -> String {
        T::WHAT.to_owned()
    }

    fn array_type() -> ArrayType {
        ArrayType::String
    }

    fn column_type() -> ColumnType {
        ColumnType::String(StringLen::None)
    }
}

impl<T: StoredCode> Nullable for Code<T> {
    fn null() -> Value {
        Value::String(None)
    }
}

impl<T: StoredCode> sea_orm::IntoActiveValue<Code<T>> for Code<T> {
    fn into_active_value(self) -> sea_orm::ActiveValue<Code<T>> {
        sea_orm::ActiveValue::Set(self)
    }
}

impl<T: StoredCode> TryFromU64 for Code<T> {
    /// Codes are text keys, never generated numbers.
    fn try_from_u64(_: u64) -> Result<Self, DbErr> {
        Err(DbErr::ConvertFromU64(T::WHAT))
    }
}

/// The [`UnknownCode`] behind a database error, if that is what it is.
pub(crate) fn unknown_code(e: &DbErr) -> Option<&UnknownCode> {
    match e {
        DbErr::TryIntoErr { source, .. } => source.downcast_ref::<UnknownCode>(),
        _ => None,
    }
}

/// A `StoredCode` from a table of `(value, code, …)` rows, the shape of the core's `ALL` constants.
macro_rules! stored_from_table {
    ($ty:ty, $what:literal, $table:expr) => {
        impl StoredCode for $ty {
            const WHAT: &'static str = $what;

            fn code(self) -> &'static str {
                self.as_str()
            }

            fn from_code(code: &str) -> Option<Self> {
                $table.iter().find(|row| row.1 == code).map(|row| row.0)
            }
        }
    };
}

stored_from_table!(Level, "rating level", Level::ALL);
stored_from_table!(Channel, "rating channel", Channel::ALL);
stored_from_table!(Owed, "work item deadline", Owed::ALL);

impl StoredCode for Role {
    const WHAT: &'static str = "role";

    fn code(self) -> &'static str {
        self.as_str()
    }

    fn from_code(code: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl StoredCode for RaterType {
    const WHAT: &'static str = "rater type";

    fn code(self) -> &'static str {
        self.as_str()
    }

    fn from_code(code: &str) -> Option<Self> {
        [RaterType::Individual, RaterType::LegalPerson]
            .into_iter()
            .find(|r| r.as_str() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: StoredCode>(values: &[T]) {
        for v in values {
            assert_eq!(T::from_code(v.code()), Some(*v), "{}", v.code());
        }
    }

    #[test]
    fn every_code_reads_back_as_its_value() {
        round_trip(&Level::ALL.map(|row| row.0));
        round_trip(&Channel::ALL.map(|row| row.0));
        round_trip(&Owed::ALL.map(|row| row.0));
        round_trip(&Role::ALL);
        round_trip(&[RaterType::Individual, RaterType::LegalPerson]);
    }

    #[test]
    fn a_label_or_alias_is_not_a_stored_code() {
        // The edges accept 不满意 and 12345; the database holds only the codes.
        assert_eq!(Level::from_code("不满意"), None);
        assert_eq!(Channel::from_code("12345"), None);
        assert_eq!(Level::from_code(" dissatisfied"), None);
        let e = parse_code::<Role>("root").unwrap_err();
        assert_eq!(e.to_string(), "stored role `root` is not a known value");
    }
}
