//! One SQL connection over either backend: SQLite (embedded, the default) or PostgreSQL.
//!
//! The store's queries are written once, in the SQL both databases accept (`?N` placeholders,
//! `ON CONFLICT … DO UPDATE`, `RETURNING`); this module binds values, translates placeholders for
//! PostgreSQL, caches prepared statements and runs transactions. It owns no schema and knows no
//! table: migrations and queries live with the records they store.

use std::collections::HashMap;

use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::error::{Error, Result};

/// The most rows one multi-row insert carries (SQLite allows 32,766 parameters, PostgreSQL 65,535).
pub(crate) const ROWS_PER_INSERT: usize = 200;

/// A value bound to or read from a query: the five storage classes both backends share.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Something that binds as a query parameter.
pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! integer_to_value {
    ($($integer:ty),*) => {$(
        impl ToValue for $integer {
            fn to_value(&self) -> Value {
                Value::Integer(*self as i64)
            }
        }
    )*};
}
integer_to_value!(i64, i32, u32, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// Builds a parameter slice: `params![a, b]` is `&[&a, &b]` as `&[&dyn ToValue]`.
macro_rules! params {
    () => { &[] as &[&dyn $crate::db::ToValue] };
    ($($value:expr),+ $(,)?) => { &[$(&$value as &dyn $crate::db::ToValue),+] as &[&dyn $crate::db::ToValue] };
}
pub(crate) use params;

/// Something a column converts into.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

macro_rules! integer_from_value {
    ($($integer:ty),*) => {$(
        impl FromValue for $integer {
            fn from_value(value: &Value) -> Option<Self> {
                match value {
                    Value::Integer(number) => <$integer>::try_from(*number).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
integer_from_value!(i64, u32, u64);

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).map(|number| number != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(number) => Some(*number),
            Value::Integer(number) => Some(*number as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug)]
pub(crate) struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `index` as `T`; a missing column or a value of another type is an error.
    pub(crate) fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self.values.get(index).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| {
            Error::Database(format!("column {index} holds {value:?}, not a {}", std::any::type_name::<T>()))
        })
    }
}

/// Turns "no row" into `None` on a [`Connection::query_row`] result.
pub(crate) trait OptionalRow<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalRow<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(Error::NoRow) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// An open connection to one of the two backends.
pub(crate) enum Connection {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PostgresConnection>),
}

/// A PostgreSQL client with its prepared statements, keyed by the store's (SQLite-style) SQL.
pub(crate) struct PostgresConnection {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl PostgresConnection {
    pub(crate) fn new(client: postgres::Client) -> Self {
        Self { client, statements: HashMap::new() }
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&postgres_placeholders(sql))?;
        if self.statements.len() > 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl Connection {
    /// Runs one statement and returns the number of rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<usize> {
        self.execute_values(sql, params.iter().map(|param| param.to_value()).collect())
    }

    /// Inserts many rows with multi-row `INSERT … VALUES (…), (…)` statements of up to
    /// [`ROWS_PER_INSERT`] rows each: one round trip per chunk instead of one per row, which is
    /// what makes batch logging fast on PostgreSQL. `head` is `INSERT INTO table (columns)`;
    /// `tail` follows the values (an `ON CONFLICT` clause, or empty). Returns the rows changed.
    pub(crate) fn insert_rows(&mut self, head: &str, tail: &str, rows: &[Vec<Value>]) -> Result<usize> {
        let mut changed = 0;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let width = chunk.first().map_or(0, Vec::len);
            if chunk.iter().any(|row| row.len() != width) {
                return Err(Error::Database(format!("rows of different widths for `{head}`")));
            }
            let tuples: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let placeholders: Vec<String> =
                        (1..=width).map(|column| format!("?{}", row * width + column)).collect();
                    format!("({})", placeholders.join(", "))
                })
                .collect();
            let sql = format!("{head} VALUES {} {tail}", tuples.join(", "));
            changed += self.execute_values(&sql, chunk.iter().flatten().cloned().collect())?;
        }
        Ok(changed)
    }

    fn execute_values(&mut self, sql: &str, values: Vec<Value>) -> Result<usize> {
        match self {
            Self::Sqlite(connection) => {
                let mut statement = connection.prepare_cached(sql)?;
                Ok(statement.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Self::Postgres(connection) => {
                let statement = connection.statement(sql)?;
                let bound: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
                Ok(connection.client.execute(&statement, &bound)? as usize)
            }
        }
    }

    /// Runs a query and returns every row.
    pub(crate) fn query(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>> {
        let values: Vec<Value> = params.iter().map(|param| param.to_value()).collect();
        match self {
            Self::Sqlite(connection) => {
                let mut statement = connection.prepare_cached(sql)?;
                let width = statement.column_count();
                let mut rows = statement.query(rusqlite::params_from_iter(values.iter()))?;
                let mut collected = Vec::new();
                while let Some(row) = rows.next()? {
                    let values = (0..width).map(|index| row.get::<_, Value>(index)).collect::<rusqlite::Result<_>>()?;
                    collected.push(Row { values });
                }
                Ok(collected)
            }
            Self::Postgres(connection) => {
                let statement = connection.statement(sql)?;
                let bound: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
                let rows = connection.client.query(&statement, &bound)?;
                rows.iter()
                    .map(|row| {
                        let values: std::result::Result<Vec<Value>, _> =
                            (0..row.len()).map(|index| row.try_get::<_, Value>(index)).collect();
                        Ok(Row { values: values? })
                    })
                    .collect()
            }
        }
    }

    /// Runs a query and maps every row.
    pub(crate) fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[&dyn ToValue],
        map: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.query(sql, params)?.iter().map(map).collect()
    }

    /// Runs a two-column query and collects its rows as pairs (into a map, usually).
    pub(crate) fn query_pairs<First: FromValue, Second: FromValue, Collection: FromIterator<(First, Second)>>(
        &mut self,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<Collection> {
        self.query(sql, params)?.iter().map(|row| Ok((row.get(0)?, row.get(1)?))).collect()
    }

    /// Runs a query and maps its first row; [`Error::NoRow`] when there is none.
    pub(crate) fn query_row<T>(
        &mut self,
        sql: &str,
        params: &[&dyn ToValue],
        map: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        match self.query(sql, params)?.first() {
            Some(row) => map(row),
            None => Err(Error::NoRow),
        }
    }

    /// Runs several statements without parameters (schema changes).
    pub(crate) fn execute_batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Self::Sqlite(connection) => Ok(connection.execute_batch(sql)?),
            Self::Postgres(connection) => Ok(connection.client.batch_execute(sql)?),
        }
    }

    /// Begins a transaction that rolls back when dropped without [`Transaction::commit`].
    pub(crate) fn transaction(&mut self) -> Result<Transaction<'_>> {
        match self {
            // IMMEDIATE takes the write lock at once, so two writers never deadlock upgrading.
            Self::Sqlite(connection) => connection.execute_batch("BEGIN IMMEDIATE")?,
            Self::Postgres(connection) => connection.client.batch_execute("BEGIN")?,
        }
        Ok(Transaction { connection: self, finished: false })
    }

    /// Whether this is the PostgreSQL backend.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// An open transaction; dereferences to its connection.
pub(crate) struct Transaction<'a> {
    connection: &'a mut Connection,
    finished: bool,
}

impl Transaction<'_> {
    /// Makes the transaction's changes durable.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.finished = true;
        self.connection.execute_batch("COMMIT")
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection
    }
}

impl std::ops::DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // Nothing to report to: the caller is already returning the error that stopped it.
            let _ = self.connection.execute_batch("ROLLBACK");
        }
    }
}

/// Rewrites SQLite placeholders (`?1`, and bare `?` numbered after the largest seen so far) into
/// PostgreSQL's `$1`, leaving quoted text alone.
pub(crate) fn postgres_placeholders(sql: &str) -> String {
    let mut translated = String::with_capacity(sql.len() + 8);
    let mut characters = sql.chars().peekable();
    let mut largest = 0_usize;
    let mut in_quotes = false;
    while let Some(character) = characters.next() {
        if character == '\'' {
            in_quotes = !in_quotes;
            translated.push(character);
            continue;
        }
        if character != '?' || in_quotes {
            translated.push(character);
            continue;
        }
        let mut digits = String::new();
        while let Some(digit) = characters.peek().filter(|next| next.is_ascii_digit()) {
            digits.push(*digit);
            characters.next();
        }
        let number = digits.parse::<usize>().unwrap_or(largest + 1);
        largest = largest.max(number);
        translated.push('$');
        translated.push_str(&number.to_string());
    }
    translated
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Integer(number) => ValueRef::Integer(*number),
            Self::Real(number) => ValueRef::Real(*number),
            Self::Text(text) => ValueRef::Text(text.as_bytes()),
            Self::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

impl rusqlite::types::FromSql for Value {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        use rusqlite::types::ValueRef;
        Ok(match value {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(number) => Self::Integer(number),
            ValueRef::Real(number) => Self::Real(number),
            ValueRef::Text(text) => Self::Text(String::from_utf8_lossy(text).into_owned()),
            ValueRef::Blob(bytes) => Self::Blob(bytes.to_vec()),
        })
    }
}

type BoxedError = Box<dyn std::error::Error + Sync + Send>;

/// Binds a value to whatever type PostgreSQL inferred for the parameter, converting between the
/// integer widths and from integers to floats or booleans, as SQLite's loose typing would.
impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxedError> {
        match (self, ty) {
            (Self::Null, _) => Ok(IsNull::Yes),
            (Self::Integer(number), &Type::INT8) => number.to_sql(ty, out),
            (Self::Integer(number), &Type::INT4) => i32::try_from(*number)?.to_sql(ty, out),
            (Self::Integer(number), &Type::INT2) => i16::try_from(*number)?.to_sql(ty, out),
            (Self::Integer(number), &Type::FLOAT8) => (*number as f64).to_sql(ty, out),
            (Self::Integer(number), &Type::BOOL) => (*number != 0).to_sql(ty, out),
            (Self::Integer(number), _) => number.to_string().to_sql(ty, out),
            (Self::Real(number), &Type::FLOAT4) => (*number as f32).to_sql(ty, out),
            (Self::Real(number), _) => number.to_sql(ty, out),
            (Self::Text(text), _) => text.to_sql(ty, out),
            (Self::Blob(bytes), _) => bytes.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT8,
            Type::INT4,
            Type::INT2,
            Type::FLOAT8,
            Type::FLOAT4,
            Type::BOOL,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::UNKNOWN,
            Type::BYTEA,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxedError> {
        Ok(match *ty {
            Type::INT8 => Self::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Self::Integer(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Self::Integer(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Self::Integer(i64::from(bool::from_sql(ty, raw)?)),
            Type::FLOAT8 => Self::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Self::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::BYTEA => Self::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Self::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxedError> {
        Ok(Self::Null)
    }

    fn accepts(ty: &Type) -> bool {
        <Self as ToSql>::accepts(ty) && *ty != Type::UNKNOWN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_like_sqlite_numbers_them() {
        assert_eq!(postgres_placeholders("a = ?1 AND b = ?2 OR c = ?1"), "a = $1 AND b = $2 OR c = $1");
        assert_eq!(postgres_placeholders("x IN (?, ?, ?) AND y = ?"), "x IN ($1, $2, $3) AND y = $4");
        assert_eq!(postgres_placeholders("x = ?2 AND y = ?"), "x = $2 AND y = $3");
        assert_eq!(postgres_placeholders("x = '?' AND y = ?1"), "x = '?' AND y = $1");
    }
}
