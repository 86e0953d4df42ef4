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

use std::io::{BufRead, Write};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};

use super::{connect_postgres, AdminError};
use crate::{
    config::Config,
    domain::{
        client::{Client, User},
        grant::GrantId,
        secrets::TokenKey,
    },
    storage::{
        postgres::PgStores,
        sled::{open_db, Durability, SledClientStore, SledTokenStore},
        ClientStore, NewToken, Registration, StorageError, TokenRecord, TokenStore,
    },
};

/// The `format` of the header line.
pub const FORMAT: &str = "oauth-mcp-export";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Tokens per page read, and per transaction written.
pub const CHUNK: usize = 500;

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Header {
        v: u32,
        format: String,
        exported_at: i64,
    },
    Lifetime {
        v: u32,
        lifetime: i64,
        in_force_until: i64,
    },
    RevokedGrant {
        v: u32,
        grant: String,
        forget_at: i64,
    },
    Client {
        v: u32,
        client: Client,
    },
    User {
        v: u32,
        user: User,
    },
    Token {
        v: u32,
        key: String,
        record: TokenRecord,
    },
    End {
        v: u32,
        lines: u64,
    },
}

/// The record types, for the message about an unknown one.
const TYPES: &[&str] = &[
    "header",
    "lifetime",
    "revoked_grant",
    "client",
    "user",
    "token",
    "end",
];

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
    Postgres(PgStores),
}

impl Stores {
    /// The PostgreSQL database of `config.database_url`, else the sled directory (which
    /// must exist and which no server may hold: stop it first).
    async fn open(config: &Config) -> Result<Self, AdminError> {
        if let Some(url) = &config.database_url {
            let stores = connect_postgres(url.as_str()).await?;
            return Ok(Self {
                clients: Box::new(stores.clients()),
                tokens: Box::new(stores.tokens()),
                backend: Backend::Postgres(stores),
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

/// An export, read and checked whole.
#[derive(Default)]
struct Parsed {
    lifetimes: Vec<(i64, i64)>,
    revoked: Vec<(GrantId, i64)>,
    clients: Vec<Client>,
    users: Vec<User>,
    tokens: Vec<NewToken>,
}

fn refused(line: u64, why: impl std::fmt::Display) -> AdminError {
    AdminError::Invalid(format!(
        "import refused, line {line}: {why}; nothing was written"
    ))
}

/// Reads every line of `input` and checks it; the error names the first bad line.
fn parse(input: impl BufRead) -> Result<Parsed, AdminError> {
    let mut parsed = Parsed::default();
    let mut number: u64 = 0;
    let mut ended = false;
    for text in input.lines() {
        number += 1;
        let text = text.map_err(|e| refused(number, format!("cannot read it ({e})")))?;
        if ended {
            return Err(refused(number, "a line after the end record"));
        }
        let line = parse_line(&text).map_err(|why| refused(number, why))?;
        match line {
            Line::Header { format, .. } if number == 1 && format == FORMAT => {}
            Line::Header { format, .. } if number == 1 => {
                return Err(refused(
                    number,
                    format!("format {format:?} is not {FORMAT:?}"),
                ))
            }
            Line::Header { .. } => return Err(refused(number, "a second header")),
            _ if number == 1 => {
                return Err(refused(number, "the first line is not the export header"))
            }
            Line::Lifetime {
                lifetime,
                in_force_until,
                ..
            } => parsed.lifetimes.push((lifetime, in_force_until)),
            Line::RevokedGrant {
                grant, forget_at, ..
            } => {
                let grant = decode_key::<16>(&grant)
                    .ok_or_else(|| refused(number, "a grant id that is not 16 bytes"))?;
                parsed.revoked.push((GrantId(grant), forget_at));
            }
            Line::Client { client, .. } => parsed.clients.push(client),
            Line::User { user, .. } => parsed.users.push(user),
            Line::Token { key, record, .. } => {
                let key = decode_key::<40>(&key)
                    .ok_or_else(|| refused(number, "a token key that is not 40 bytes"))?;
                parsed.tokens.push(NewToken {
                    key: TokenKey(key),
                    record,
                });
            }
            Line::End { lines, .. } => {
                if lines != number - 1 {
                    return Err(refused(
                        number,
                        format!(
                            "the end record counts {lines} lines before it, not {}",
                            number - 1
                        ),
                    ));
                }
                ended = true;
            }
        }
    }
    if !ended {
        return Err(refused(
            number + 1,
            "the export ends without its end record (truncated?)",
        ));
    }
    Ok(parsed)
}

/// One line: its type and version checked first, for a precise message, then its fields.
fn parse_line(text: &str) -> Result<Line, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or("no \"type\"")?
        .to_owned();
    let kind = kind.as_str();
    if !TYPES.contains(&kind) {
        return Err(format!("unknown record type {kind:?}"));
    }
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "format version {v} of a {kind} record; this oauth-mcp reads version {VERSION}"
            ))
        }
        None => return Err(format!("a {kind} record without a format version \"v\"")),
    }
    serde_json::from_value(value).map_err(|e| {
        // Only messages naming a field, never one quoting a value (a line may hold a
        // password hash).
        let e = e.to_string();
        if e.starts_with("missing field") || e.starts_with("unknown field") {
            format!("a {kind} record that does not parse ({e})")
        } else {
            format!("a {kind} record with a field of the wrong type")
        }
    })
}

fn decode_key<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    <[u8; N]>::try_from(bytes.as_slice()).ok()
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
    let (_, existing) = stores.clients.load().await?;
    let existing: std::collections::HashSet<String> =
        existing.into_iter().map(|u| u.username).collect();
    for user in parsed.users {
        if !existing.contains(&user.username) {
            stores.clients.put_user(user).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> String {
        format!(r#"{{"type":"header","v":1,"format":"{FORMAT}","exported_at":1}}"#)
    }

    fn err(input: &str) -> String {
        match parse(input.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {input}"),
        }
    }

    #[test]
    fn an_empty_export_parses() {
        let input = format!("{}\n{}\n", header(), r#"{"type":"end","v":1,"lines":1}"#);
        let parsed = parse(input.as_bytes()).unwrap();
        assert!(parsed.clients.is_empty() && parsed.tokens.is_empty());
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let end = r#"{"type":"end","v":1,"lines":2}"#;
        let e = err(&format!(
            "{}\n{{\"type\":\"gizmo\",\"v\":1}}\n{end}\n",
            header()
        ));
        assert!(
            e.contains("line 2") && e.contains("unknown record type"),
            "{e}"
        );
        let e = err(&format!(
            "{}\n{{\"type\":\"user\",\"v\":2,\"user\":{{}}}}\n{end}\n",
            header()
        ));
        assert!(e.contains("line 2") && e.contains("version 2"), "{e}");
        let e = err(&format!("{}\nnot json\n{end}\n", header()));
        assert!(e.contains("line 2") && e.contains("not JSON"), "{e}");
        let e = err(&format!("{}\n", header()));
        assert!(e.contains("line 2") && e.contains("truncated"), "{e}");
        let e = err(r#"{"type":"end","v":1,"lines":0}"#);
        assert!(e.contains("line 1") && e.contains("header"), "{e}");
        let e = err(&format!("{}\n{}\n", header(), end));
        assert!(e.contains("counts 2 lines"), "{e}");
        let secret = r#"{"type":"user","v":1,"user":{"username":"a","password_hash":7}}"#;
        let e = err(&format!("{}\n{secret}\n{end}\n", header()));
        assert!(e.contains("line 2") && e.contains("user record"), "{e}");
    }
}
