//! Compact binary encoding of [`TokenRecord`], the hottest record: every issuance, rotation
//! and bearer check writes or reads one. JSON cost about three times the bytes, and sled
//! copies a whole leaf node on every write, so record size is paid again on each insert.
//!
//! Layout (version 1), all integers big-endian:
//! `version u8 | kind u8 | grant_id [16] | issued_at i64 | expires_at i64 | rotated_at i64
//! (i64::MIN = none) | client_id str | subject str (len 0xFFFF = none) | scopes str |
//! resource str`, where `str` is `len u16 | UTF-8 bytes`.
//! `expires_at` sits at a fixed offset ([`EXPIRES_AT`]) so the sweeper reads it without
//! decoding the rest.

use super::records::{GrantId, TokenKind, TokenRecord};
use crate::domain::scope::Scopes;

const VERSION: u8 = 1;
const NONE_LEN: u16 = u16::MAX;
/// Byte range of `expires_at` in an encoded record.
pub const EXPIRES_AT: std::ops::Range<usize> = 26..34;

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Every string here is bounded well below 64 KiB by the request limits; truncating
    // would corrupt, so clamp to the encodable maximum explicitly.
    let bytes = s.as_bytes();
    let len = bytes.len().min(usize::from(NONE_LEN - 1));
    out.extend_from_slice(&u16::try_from(len).unwrap_or(NONE_LEN - 1).to_be_bytes());
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

/// Encodes a token record.
pub fn encode_token(r: &TokenRecord) -> Vec<u8> {
    let scopes = r.scopes.to_string();
    let mut out = Vec::with_capacity(48 + r.client_id.len() + scopes.len() + r.resource.len() + 32);
    out.push(VERSION);
    out.push(match r.kind {
        TokenKind::Access => 0,
        TokenKind::Refresh => 1,
    });
    out.extend_from_slice(&r.grant_id.0);
    out.extend_from_slice(&r.issued_at.to_be_bytes());
    out.extend_from_slice(&r.expires_at.to_be_bytes());
    out.extend_from_slice(&r.rotated_at.unwrap_or(i64::MIN).to_be_bytes());
    put_str(&mut out, &r.client_id);
    match &r.subject {
        Some(s) => put_str(&mut out, s),
        None => out.extend_from_slice(&NONE_LEN.to_be_bytes()),
    }
    put_str(&mut out, &scopes);
    put_str(&mut out, &r.resource);
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<Option<&'a str>> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        if len == NONE_LEN {
            return Some(None);
        }
        Some(Some(
            std::str::from_utf8(self.take(usize::from(len))?).ok()?,
        ))
    }
}

/// Decodes a token record; `None` if the bytes are not a valid version-1 record.
pub fn decode_token(bytes: &[u8]) -> Option<TokenRecord> {
    let mut r = Reader { bytes, at: 0 };
    if r.u8()? != VERSION {
        return None;
    }
    let kind = match r.u8()? {
        0 => TokenKind::Access,
        1 => TokenKind::Refresh,
        _ => return None,
    };
    let grant_id = GrantId(r.take(16)?.try_into().ok()?);
    let issued_at = r.i64()?;
    let expires_at = r.i64()?;
    let rotated_at = Some(r.i64()?).filter(|t| *t != i64::MIN);
    let client_id = r.str()??.to_owned();
    let subject = r.str()?.map(str::to_owned);
    let scopes = Scopes::parse(r.str()??).ok()?;
    let resource = r.str()??.to_owned();
    Some(TokenRecord {
        kind,
        grant_id,
        client_id,
        subject,
        scopes,
        resource,
        issued_at,
        expires_at,
        rotated_at,
    })
}

/// Reads only `expires_at` of an encoded record.
pub fn token_expires_at(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.get(EXPIRES_AT)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(subject: Option<&str>, rotated: Option<i64>) -> TokenRecord {
        TokenRecord {
            kind: TokenKind::Refresh,
            grant_id: GrantId([7; 16]),
            client_id: "client".into(),
            subject: subject.map(Into::into),
            scopes: Scopes::parse("mcp:read mcp:write").unwrap(),
            resource: "http://localhost:8000/mcp".into(),
            issued_at: 1_800_000_000,
            expires_at: 1_800_003_600,
            rotated_at: rotated,
        }
    }

    #[test]
    fn round_trips() {
        for rec in [
            sample(Some("u"), None),
            sample(None, Some(5)),
            sample(Some(""), Some(-1)),
        ] {
            let bytes = encode_token(&rec);
            let back = decode_token(&bytes).unwrap();
            assert_eq!(format!("{rec:?}"), format!("{back:?}"));
            assert_eq!(token_expires_at(&bytes), Some(rec.expires_at));
        }
    }

    #[test]
    fn garbage_is_refused_not_panicked() {
        let bytes = encode_token(&sample(Some("u"), None));
        for cut in 0..bytes.len() {
            assert!(decode_token(&bytes[..cut]).is_none());
        }
        assert!(decode_token(b"{\"json\":1}").is_none());
    }
}
