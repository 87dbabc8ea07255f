//! The statements of one schema: each template of [`sql`](crate::sql)
//! with the schema put in, made once and shared.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::AssertSqlSafe;

use crate::{Error, Result};

/// The longest schema name: its channel, `honker:` and the name, must
/// fit PostgreSQL's 63 bytes of an identifier.
pub const MAX_SCHEMA: usize = 63 - "honker:".len();

/// The schema a store uses when none is given.
pub const DEFAULT_SCHEMA: &str = "honker";

/// The statements of one schema, and its notification channel.
///
/// ```
/// let s = honker_postgres::Statements::new("honker").unwrap();
/// assert_eq!(s.schema(), "honker");
/// assert!(honker_postgres::Statements::new("Robert'); DROP").is_err());
/// ```
#[derive(Debug)]
pub struct Statements {
    schema: String,
    quoted: String,
    channel: String,
    made: RwLock<HashMap<(usize, usize), Arc<str>>>,
}

impl Statements {
    /// The statements of schema `schema`: lowercase ASCII letters, digits
    /// and `_`, starting with a letter or `_`, at most [`MAX_SCHEMA`] (56)
    /// bytes (its channel's name must fit PostgreSQL's 63), so it never
    /// needs escaping.
    pub fn new(schema: &str) -> Result<Statements> {
        let ok = !schema.is_empty()
            && schema.len() <= MAX_SCHEMA
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(Error::SchemaName(schema.to_string()));
        }
        Ok(Statements {
            schema: schema.to_string(),
            quoted: format!("\"{schema}\""),
            channel: format!("honker:{schema}"),
            made: RwLock::default(),
        })
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The channel the schema's writes notify (`honker:<schema>`).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// `template` with the schema put in: made once per template.
    pub fn get(&self, template: &'static str) -> AssertSqlSafe<Arc<str>> {
        let key = (template.as_ptr() as usize, template.len());
        if let Some(s) = self
            .made
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return AssertSqlSafe(s.clone());
        }
        let made: Arc<str> = template.replace("{s}", &self.quoted).into();
        self.made
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, made.clone());
        AssertSqlSafe(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_name_is_checked_and_put_in_quoted() {
        for bad in [
            "",
            "Honker",
            "1abc",
            "a-b",
            "a\"b",
            &"a".repeat(MAX_SCHEMA + 1),
        ] {
            assert!(
                matches!(Statements::new(bad), Err(Error::SchemaName(_))),
                "{bad:?}"
            );
        }
        let s = Statements::new("jobs_2").unwrap();
        assert_eq!(&*s.get(crate::sql::NOW).0, "SELECT \"jobs_2\".now_s()");
        assert_eq!(s.channel(), "honker:jobs_2");
        let longest = Statements::new(&"a".repeat(MAX_SCHEMA)).unwrap();
        assert_eq!(
            longest.channel().len(),
            63,
            "a channel PostgreSQL keeps whole"
        );
    }
}
