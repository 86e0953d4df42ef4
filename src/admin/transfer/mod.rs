//! `oauth-mcp admin export` and `import`: moving a deployment from sled to PostgreSQL (or
//! back) without invalidating what was issued (issue 14).
//!
//! # Format (version [`VERSION`])
//! JSON lines. Every line is one object with a `type` tag and a format version `v`:
//! `header` first (`format` = [`FORMAT`], `exported_at`), then `lifetime` (a token lifetime
//! and until when tokens of it may be issued), `revoked_grant` (`grant`, `forget_at`),
//! `client` (the stored client: secret digest, never a secret), `user` (the Argon2id hash),
//! `token` (`key`: the stored digest, base64url; `record`), and `end` last, with the number
//! of lines before it, so a truncated export is refused rather than half imported.
//! Tokens are stored by digest only, so the file holds no usable bearer token, but it
//! holds every client secret digest and password hash: keep it like the database.
//!
//! Only what is live is exported: tokens not expired, revocations not yet forgotten.
//! Authorization codes (a minute's life) and sign-in sessions are not.
//!
//! # Import: fail closed, idempotent
//! Every line is read and checked first (an unknown type or version, a line that does not
//! parse, a missing header or end: refused with its line number, nothing written). Then the
//! records are written through the store intents: lifetimes raised, grants revoked (before
//! any token, so a revoked grant is never live for an instant), clients registered unless
//! their id exists, users inserted unless their name exists, tokens inserted unless their
//! key exists, [`CHUNK`] per transaction. Importing twice changes nothing the second time.
//! Issued tokens keep working on the target when its servers use the same `--key-file`
//! (refresh rotation derives the successors under the key).
//!
//! The source is a sled data directory no server holds, or a PostgreSQL database (live);
//! the target an (empty) sled data directory or a PostgreSQL database, migrated first.

mod format;

use std::io::{BufRead, Write};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

use self::format::{parse, Line, Parsed};
use super::{connect_postgres, AdminError};
use crate::{
    config::Config,
    services::StartError,
    storage::{
        postgres::PgStores,
        sled::{open_db, Durability, SledClientStore, SledTokenStore},
        ClientStore, NewToken, Registration, StorageError, TokenStore,
    },
};

/// The `format` of the header line.
pub const FORMAT: &str = "oauth-mcp-export";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Tokens per page read, and per transaction written.
pub const CHUNK: usize = 500;

/// What an export or import counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Clients.
    pub clients: usize,
    /// Users.
    pub users: usize,
    /// Tokens.
    pub tokens: usize,
    /// Revoked grants.
    pub revoked_grants: usize,
    /// Token lifetime records.
    pub lifetimes: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} clients, {} users, {} tokens, {} revoked grants, {} token lifetimes",
            self.clients, self.users, self.tokens, self.revoked_grants, self.lifetimes
        )
    }
}

/// The stores of a sled directory or a PostgreSQL database, opened without actors.
struct Stores {
    clients: Box<dyn ClientStore>,
    tokens: Box<dyn TokenStore>,
    backend: Backend,
}

enum Backend {
    Sled(sled::Db),
    /// Boxed: the pool handle is large, and made once per command.
    Postgres(Box<PgStores>),
}

impl Stores {
    /// The PostgreSQL database of `config.database_url`, else the sled directory (which
    /// must exist and which no server may hold: stop it first).
    async fn open(config: &Config) -> Result<Self, AdminError> {
        if let Some(url) = &config.database_url {
            let roots = config
                .settings(config.bind.port())
                .map_err(StartError::from)?
                .database_roots;
            let stores = connect_postgres(url.as_str(), roots).await?;
            return Ok(Self {
                clients: Box::new(stores.clients()),
                tokens: Box::new(stores.tokens()),
                backend: Backend::Postgres(Box::new(stores)),
            });
        }
        let dir = config.data_dir.clone();
        if !dir.is_dir() {
            return Err(AdminError::NoDataDir(dir));
        }
        let db = match open_db(config) {
            Ok(db) => db,
            Err(StorageError::InUse(_)) => return Err(AdminError::InUse(dir)),
            Err(e) => return Err(e.into()),
        };
        // Written once at the end (`close`): an import is all or (re-runnable) nothing.
        Ok(Self {
            clients: Box::new(SledClientStore::open(&db, Durability::relaxed())?),
            tokens: Box::new(SledTokenStore::open(&db, Durability::relaxed())?),
            backend: Backend::Sled(db),
        })
    }

    /// Flushes a sled directory and releases it; closes a PostgreSQL pool.
    async fn close(self) -> Result<(), AdminError> {
        let Self {
            clients,
            tokens,
            backend,
        } = self;
        drop((clients, tokens));
        match backend {
            Backend::Sled(db) => {
                tokio::task::spawn_blocking(move || db.flush())
                    .await
                    .map_err(|e| AdminError::Internal(e.to_string()))?
                    .map_err(StorageError::from)?;
            }
            Backend::Postgres(stores) => stores.close(),
        }
        Ok(())
    }
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<(), AdminError> {
    let failed = |e: std::io::Error| AdminError::Internal(format!("cannot write the export: {e}"));
    serde_json::to_writer(&mut *out, line).map_err(|e| failed(e.into()))?;
    out.write_all(b"\n").map_err(failed)
}

/// Writes the export of the storage `config` names to `out`; `now` decides what is live.
pub async fn export(config: &Config, out: &mut impl Write, now: i64) -> Result<Counts, AdminError> {
    let stores = Stores::open(config).await?;
    let written = export_from(&stores, out, now).await;
    let closed = stores.close().await;
    let counts = written?;
    closed?;
    Ok(counts)
}

async fn export_from(
    stores: &Stores,
    out: &mut impl Write,
    now: i64,
) -> Result<Counts, AdminError> {
    let mut counts = Counts::default();
    let lines = std::cell::Cell::new(0u64);
    let emit = |out: &mut _, line: Line| {
        lines.set(lines.get() + 1);
        write_line(out, &line)
    };
    emit(
        out,
        Line::Header {
            v: VERSION,
            format: FORMAT.into(),
            exported_at: now,
        },
    )?;
    for (lifetime, in_force_until) in stores.tokens.lifetimes().await? {
        counts.lifetimes += 1;
        emit(
            out,
            Line::Lifetime {
                v: VERSION,
                lifetime,
                in_force_until,
            },
        )?;
    }
    let revoked = stores.tokens.revoked_grants().await?;
    if revoked.undecodable > 0 {
        // Fail closed: a revocation that cannot be copied would be lost on the target.
        return Err(AdminError::Invalid(format!(
            "{} revoked-grant records do not decode; nothing can be exported safely",
            revoked.undecodable
        )));
    }
    for (grant, forget_at) in revoked.grants {
        if forget_at <= now {
            continue;
        }
        counts.revoked_grants += 1;
        emit(
            out,
            Line::RevokedGrant {
                v: VERSION,
                grant: URL_SAFE_NO_PAD.encode(grant.0),
                forget_at,
            },
        )?;
    }
    let (clients, users) = stores.clients.load().await?;
    for client in clients {
        counts.clients += 1;
        emit(out, Line::Client { v: VERSION, client })?;
    }
    for user in users {
        counts.users += 1;
        emit(out, Line::User { v: VERSION, user })?;
    }
    let mut after = None;
    loop {
        let page = stores.tokens.tokens_after(after, CHUNK).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key);
        for NewToken { key, record } in page {
            if record.expires_at <= now {
                continue;
            }
            counts.tokens += 1;
            emit(
                out,
                Line::Token {
                    v: VERSION,
                    key: URL_SAFE_NO_PAD.encode(key.0),
                    record,
                },
            )?;
        }
    }
    let lines_before = lines.get();
    emit(
        out,
        Line::End {
            v: VERSION,
            lines: lines_before,
        },
    )?;
    out.flush()
        .map_err(|e| AdminError::Internal(format!("cannot write the export: {e}")))?;
    Ok(counts)
}

/// Reads an export from `input` and writes it into the storage `config` names. Answers
/// what was inserted (records present already are left as they are).
pub async fn import(config: &Config, input: impl BufRead) -> Result<Counts, AdminError> {
    let parsed = parse(input)?;
    let stores = Stores::open(config).await?;
    let written = import_into(&stores, parsed).await;
    let closed = stores.close().await;
    let counts = written?;
    closed?;
    Ok(counts)
}

async fn import_into(stores: &Stores, parsed: Parsed) -> Result<Counts, AdminError> {
    let mut counts = Counts::default();
    for (lifetime, until) in parsed.lifetimes {
        stores.tokens.record_lifetime(lifetime, until).await?;
        counts.lifetimes += 1;
    }
    // Before any token: a revoked grant's tokens are never live on the target.
    for (grant, forget_at) in parsed.revoked {
        stores.tokens.revoke_grant(grant, forget_at).await?;
        counts.revoked_grants += 1;
    }
    for client in parsed.clients {
        if stores.clients.register_client(client, None).await? == Registration::Registered {
            counts.clients += 1;
        }
    }
    for user in parsed.users {
        if stores.clients.insert_user(user).await? {
            counts.users += 1;
        }
    }
    let mut tokens = parsed.tokens;
    while !tokens.is_empty() {
        let rest = tokens.split_off(tokens.len().min(CHUNK));
        counts.tokens += stores.tokens.import_tokens(tokens).await?;
        tokens = rest;
    }
    Ok(counts)
}
