//! API tokens: a name, a scope and the BLAKE3 hash of a secret shown once at creation.

use crate::db::{OptionalRow, Row, params};
use causeway_types::SeededRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::MetaStore;

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read anything.
    Read,
    /// Also log runs, metrics, artifacts and predictions.
    Write,
    /// Also change models, versions and aliases.
    Admin,
}

impl Scope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Public id.
    pub id: String,
    /// The name audit events show as the actor.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Creation time (epoch ms).
    pub created_ms: i64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Reads `id, name, scope, created_ms, revoked`; `None` for an unknown scope.
fn token_from_row(row: &Row) -> Result<Option<ApiToken>> {
    let scope: String = row.get(2)?;
    let (id, name, created_ms, revoked) = (row.get(0)?, row.get(1)?, row.get(3)?, row.get(4)?);
    Ok(Scope::parse(&scope).map(|scope| ApiToken { id, name, scope, created_ms, revoked }))
}

fn hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// 32 bytes of randomness from the OS for a token secret.
fn random_secret() -> Result<String> {
    Ok(format!("cw_{}", random_hex(32)?))
}

/// `bytes` bytes of randomness from the operating system, in hex: for secrets and unguessable ids.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    let mut file = std::fs::File::open("/dev/urandom")
        .map_err(|source| crate::blob::io_error("open", std::path::Path::new("/dev/urandom"), source))?;
    std::io::Read::read_exact(&mut file, &mut buffer)
        .map_err(|source| crate::blob::io_error("read", std::path::Path::new("/dev/urandom"), source))?;
    Ok(hex(&buffer))
}

/// Bytes as lowercase hex, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl MetaStore {
    /// Creates a token and returns it with its secret, which is not stored and cannot be shown again.
    pub fn create_token(&self, name: &str, scope: Scope, at_ms: i64) -> Result<(ApiToken, String)> {
        if name.trim().is_empty() {
            return Err(Error::InvalidValue("token name must not be empty".into()));
        }
        let secret = random_secret()?;
        let id = format!("{:016x}", SeededRng::derive(at_ms as u64, &secret).next_u64());
        let inserted = self.lock().execute(
            "INSERT INTO api_tokens (id, name, scope, secret_hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
            params![id, name, scope.as_str(), hash(&secret), at_ms],
        )?;
        if inserted == 0 {
            return Err(Error::AlreadyExists(format!("token `{name}`")));
        }
        Ok((ApiToken { id, name: name.to_string(), scope, created_ms: at_ms, revoked: false }, secret))
    }

    /// The live token with this secret, if any.
    pub fn authenticate(&self, secret: &str) -> Result<Option<ApiToken>> {
        let found = self
            .lock()
            .query_row(
                "SELECT id, name, scope, created_ms, revoked FROM api_tokens WHERE secret_hash = ?1 AND revoked = 0",
                params![hash(secret)],
                token_from_row,
            )
            .optional()?;
        Ok(found.flatten())
    }

    /// Every token, without secrets.
    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = self.lock().query_map(
            "SELECT id, name, scope, created_ms, revoked FROM api_tokens ORDER BY created_ms, name",
            params![],
            token_from_row,
        )?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// Revokes a token by name.
    pub fn revoke_token(&self, name: &str) -> Result<()> {
        let changed = self.lock().execute("UPDATE api_tokens SET revoked = 1 WHERE name = ?1", params![name])?;
        if changed == 0 {
            return Err(Error::NotFound(format!("token `{name}`")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestStore, on_both_backends};

    fn tokens_authenticate_by_secret_until_revoked(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let (token, secret) = store.create_token("ci", Scope::Write, 1)?;
        assert!(secret.starts_with("cw_") && secret.len() == 67);
        assert_eq!(store.authenticate(&secret)?.map(|found| found.name), Some("ci".to_string()));
        assert_eq!(store.authenticate("cw_wrong")?, None);
        assert!(matches!(store.create_token("ci", Scope::Read, 2), Err(Error::AlreadyExists(_))));
        let (_, other) = store.create_token("ops", Scope::Admin, 3)?;
        assert_ne!(secret, other);
        store.revoke_token("ci")?;
        assert_eq!(store.authenticate(&secret)?, None);
        assert_eq!(store.tokens()?.len(), 2);
        assert!(Scope::Admin > Scope::Write && Scope::Write > Scope::Read);
        assert_eq!(token.scope, Scope::Write);
        Ok(())
    }

    on_both_backends!(tokens_authenticate_by_secret_until_revoked);
}
