//! The export format (see [`super`]): one [`Line`] per line, and [`parse`], which reads an
//! export whole and checks every line (type, version, fields, header and end) before the
//! import writes anything; an error names the first bad line.

use std::io::BufRead;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};

use super::{FORMAT, VERSION};
use crate::{
    admin::AdminError,
    domain::{
        client::{Client, User},
        grant::GrantId,
        secrets::TokenKey,
    },
    storage::{NewToken, TokenRecord},
};

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Line {
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

/// An export, read and checked whole.
#[derive(Default)]
pub(super) struct Parsed {
    /// `(lifetime, in_force_until)` records.
    pub(super) lifetimes: Vec<(i64, i64)>,
    /// Revoked grants with their forget time.
    pub(super) revoked: Vec<(GrantId, i64)>,
    /// Clients as stored.
    pub(super) clients: Vec<Client>,
    /// Users as stored.
    pub(super) users: Vec<User>,
    /// Tokens by key.
    pub(super) tokens: Vec<NewToken>,
}

fn refused(line: u64, why: impl std::fmt::Display) -> AdminError {
    AdminError::Invalid(format!(
        "import refused, line {line}: {why}; nothing was written"
    ))
}

/// Reads every line of `input` and checks it; the error names the first bad line.
pub(super) fn parse(input: impl BufRead) -> Result<Parsed, AdminError> {
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
