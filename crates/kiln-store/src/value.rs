//! Values crossing the seam: parameters, result rows and bulk columns, in
//! the four types kiln stores (integers, text, bytes, NULL) plus key
//! arrays for batch lookups.

use std::error::Error as StdError;

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::error::{Error, Result};

/// One SQL parameter or result value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer (booleans are 0 and 1).
    Int(i64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// A batch of integer keys, for `rarray(?N)`.
    Ints(Vec<i64>),
    /// A batch of text keys, for `rarray(?N)`.
    Texts(Vec<String>),
    /// A batch of byte keys, for `rarray(?N)`.
    Blobs(Vec<Vec<u8>>),
}

impl Value {
    /// The PostgreSQL array type of a key batch, for the `unnest` cast.
    pub(crate) fn pg_array(&self) -> Option<&'static str> {
        match self {
            Value::Ints(_) => Some("int8[]"),
            Value::Texts(_) => Some("text[]"),
            Value::Blobs(_) => Some("bytea[]"),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
            Value::Ints(_) | Value::Texts(_) | Value::Blobs(_) => "an array",
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value> {
        self.0.get(i).ok_or(Error::Column {
            index: i,
            wanted: "a value",
            found: "no such column",
        })
    }

    fn wrong(i: usize, wanted: &'static str, v: &Value) -> Error {
        Error::Column {
            index: i,
            wanted,
            found: v.kind(),
        }
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64> {
        match self.at(i)? {
            Value::Int(n) => Ok(*n),
            v => Err(Self::wrong(i, "an integer", v)),
        }
    }

    /// Column `i` as an integer or NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String> {
        match self.at(i)? {
            Value::Text(s) => Ok(s.clone()),
            v => Err(Self::wrong(i, "text", v)),
        }
    }

    /// Column `i` as text or NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    /// Column `i` as bytes.
    pub fn blob(&self, i: usize) -> Result<Vec<u8>> {
        match self.at(i)? {
            Value::Blob(b) => Ok(b.clone()),
            v => Err(Self::wrong(i, "bytes", v)),
        }
    }

    /// Column `i` as bytes or NULL.
    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }

    /// Move the values out.
    pub fn into_values(self) -> Vec<Value> {
        self.0
    }
}

/// A column's stored type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer.
    Int,
    /// Text.
    Text,
    /// Bytes.
    Blob,
}

/// Rows for a bulk insert ([`crate::Conn::insert_rows`]), added a row at
/// a time and kept column by column.
#[derive(Debug, Clone)]
pub struct Rows(Vec<Column>);

impl Rows {
    /// No rows yet, of columns of these types.
    pub fn new(kinds: &[Kind]) -> Rows {
        Rows(kinds.iter().map(|k| Column::empty(*k)).collect())
    }

    /// Append one row, a value per column.
    pub fn push(&mut self, row: impl IntoIterator<Item = Value>) -> Result<()> {
        for (c, v) in self.0.iter_mut().zip(row) {
            c.push(v)?;
        }
        Ok(())
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.0.first().map_or(0, Column::len)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The columns, for [`crate::Conn::insert_rows`].
    pub fn columns(&self) -> &[Column] {
        &self.0
    }

    /// Hand the rows over, leaving none of the same columns.
    pub fn take(&mut self) -> Rows {
        let empty = self.0.iter().map(|c| Column::empty(c.kind())).collect();
        Rows(std::mem::replace(&mut self.0, empty))
    }
}

/// One column of a bulk insert ([`crate::Conn::insert_rows`]): every row's
/// value for it. All columns of one insert have the same length.
#[derive(Debug, Clone)]
pub enum Column {
    /// Integers (or NULL).
    Int(Vec<Option<i64>>),
    /// Text (or NULL).
    Text(Vec<Option<String>>),
    /// Bytes (or NULL).
    Blob(Vec<Option<Vec<u8>>>),
}

impl Column {
    /// An empty column of type `kind`.
    pub fn empty(kind: Kind) -> Column {
        match kind {
            Kind::Int => Column::Int(Vec::new()),
            Kind::Text => Column::Text(Vec::new()),
            Kind::Blob => Column::Blob(Vec::new()),
        }
    }

    /// Its type.
    pub fn kind(&self) -> Kind {
        match self {
            Column::Int(_) => Kind::Int,
            Column::Text(_) => Kind::Text,
            Column::Blob(_) => Kind::Blob,
        }
    }

    /// Rows in the column.
    pub fn len(&self) -> usize {
        match self {
            Column::Int(v) => v.len(),
            Column::Text(v) => v.len(),
            Column::Blob(v) => v.len(),
        }
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`'s value.
    pub(crate) fn value(&self, i: usize) -> Value {
        match self {
            Column::Int(v) => v[i].into(),
            Column::Text(v) => v[i].clone().into(),
            Column::Blob(v) => v[i].clone().into(),
        }
    }

    /// The PostgreSQL array type, for `unnest($N::type)`.
    pub(crate) fn pg_array(&self) -> &'static str {
        match self {
            Column::Int(_) => "int8[]",
            Column::Text(_) => "text[]",
            Column::Blob(_) => "bytea[]",
        }
    }

    /// Rows `range` of the column as one PostgreSQL array parameter,
    /// without copying them.
    pub(crate) fn pg_param(&self, range: std::ops::Range<usize>) -> Box<dyn ToSql + Sync + '_> {
        match self {
            Column::Int(v) => Box::new(&v[range]),
            Column::Text(v) => Box::new(&v[range]),
            Column::Blob(v) => Box::new(&v[range]),
        }
    }

    /// Append a value of the column's type (NULL fits any).
    pub fn push(&mut self, v: Value) -> Result<()> {
        match (self, v) {
            (Column::Int(c), Value::Int(n)) => c.push(Some(n)),
            (Column::Int(c), Value::Null) => c.push(None),
            (Column::Text(c), Value::Text(s)) => c.push(Some(s)),
            (Column::Text(c), Value::Null) => c.push(None),
            (Column::Blob(c), Value::Blob(b)) => c.push(Some(b)),
            (Column::Blob(c), Value::Null) => c.push(None),
            (c, v) => {
                return Err(Error::Column {
                    index: 0,
                    wanted: match c.kind() {
                        Kind::Int => "an integer",
                        Kind::Text => "text",
                        Kind::Blob => "bytes",
                    },
                    found: v.kind(),
                });
            }
        }
        Ok(())
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V, ValueRef};
        // What rusqlite's `Array` binds: the carray pointer type "rarray".
        let array = |vals: Vec<V>| -> rusqlite::Result<ToSqlOutput<'_>> {
            Ok(ToSqlOutput::from_rc(std::rc::Rc::new(vals), c"rarray"))
        };
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Ints(v) => array(v.iter().map(|n| V::Integer(*n)).collect())?,
            Value::Texts(v) => array(v.iter().map(|s| V::Text(s.clone())).collect())?,
            Value::Blobs(v) => array(v.iter().map(|b| V::Blob(b.clone())).collect())?,
        })
    }
}

/// A SQLite result value as a [`Value`] (a REAL, which kiln never writes,
/// is refused).
pub(crate) fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Result<Value> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Real(_) => {
            return Err(Error::Column {
                index: 0,
                wanted: "an integer, text or bytes",
                found: "a real number",
            })
        }
    })
}

/// A PostgreSQL result value as a [`Value`], by the column's type.
pub(crate) fn from_pg(row: &postgres::Row, i: usize) -> Result<Value> {
    let ty = row.columns()[i].type_().clone();
    let get = |_: postgres::Error| Error::Column {
        index: i,
        wanted: "a value kiln stores",
        found: "an unreadable value",
    };
    let v = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(get)?.into(),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(get)?
            .map(i64::from)
            .into(),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(get)?
            .map(i64::from)
            .into(),
        Type::BOOL => row.try_get::<_, Option<bool>>(i).map_err(get)?.into(),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i).map_err(get)?.into(),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            row.try_get::<_, Option<String>>(i).map_err(get)?.into()
        }
        _ => {
            return Err(Error::Column {
                index: i,
                wanted: "an integer, text or bytes",
                found: "another PostgreSQL type",
            })
        }
    };
    Ok(v)
}

/// Parameters go to PostgreSQL as the type the server inferred for them,
/// so one [`Value::Int`] serves `int8`, `int4` and `bool` columns alike.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                _ => n.to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
            Value::Ints(v) => v.to_sql(ty, out),
            Value::Texts(v) => v.to_sql(ty, out),
            Value::Blobs(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}
