//! Compact binary encoding of the hot records: [`TokenRecord`] (every issuance, rotation and
//! bearer check writes or reads one) and the code tree's [`StoredCode`] (every code exchange).
//! JSON cost about three times the bytes, and sled copies a whole leaf node on every write,
//! so record size is paid again on each insert.
//!
//! ## Token records
//! Layout (version 1), all integers big-endian:
//! `version u8 | kind u8 | grant_id [16] | issued_at i64 | expires_at i64 | rotated_at i64
//! (i64::MIN = none) | client_id str | subject str (len 0xFFFF = none) | scopes str |
//! resource str`, where `str` is `len u16 | UTF-8 bytes`. Version 1 holds `rotated_at` in
//! seconds; version 2, the same layout with `rotated_at` in microseconds, is written only
//! for rotated refresh tokens (so an older build that cannot read it meets it only on a
//! token that is already rotated out: refused, never accepted).
//! `expires_at` sits at a fixed offset ([`EXPIRES_AT`]) so the sweeper reads it without
//! decoding the rest.
//!
//! ## Code tree values
//! `tag u8 | expires i64 | grant_id [16] | ...`: tag 1 is a live code, followed by
//! `redirect_uri_explicit u8 | client_id str | redirect_uri str | code_challenge str |
//! scopes str | resource str | subject str`, and `expires` is its expiry; tag 2 is a
//! redeemed code kept for replay detection, nothing follows, and `expires` is when it may be
//! forgotten. Both keep `expires` at the same fixed offset ([`CODE_EXPIRES`]) for the sweeper.

use super::records::{CodeRecord, GrantId, StoredCode, TokenKind, TokenRecord, UsedCodeRecord};
use crate::domain::scope::Scopes;

const VERSION: u8 = 1;
/// Version 2: `rotated_at` in microseconds.
const VERSION_ROTATED_US: u8 = 2;
const NONE_LEN: u16 = u16::MAX;
/// Byte range of `expires_at` in an encoded record.
pub const EXPIRES_AT: std::ops::Range<usize> = 26..34;
/// Byte range of the expiry (or forget time) in an encoded code tree value.
pub const CODE_EXPIRES: std::ops::Range<usize> = 1..9;
const TAG_LIVE_CODE: u8 = 1;
const TAG_USED_CODE: u8 = 2;

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
    out.push(if r.rotated_at_us.is_some() {
        VERSION_ROTATED_US
    } else {
        VERSION
    });
    out.push(match r.kind {
        TokenKind::Access => 0,
        TokenKind::Refresh => 1,
    });
    out.extend_from_slice(&r.grant_id.0);
    out.extend_from_slice(&r.issued_at.to_be_bytes());
    out.extend_from_slice(&r.expires_at.to_be_bytes());
    out.extend_from_slice(&r.rotated_at_us.unwrap_or(i64::MIN).to_be_bytes());
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

/// Decodes a token record; `None` if the bytes are not a valid version-1 or -2 record.
pub fn decode_token(bytes: &[u8]) -> Option<TokenRecord> {
    let mut r = Reader { bytes, at: 0 };
    let rotated_scale = match r.u8()? {
        VERSION => 1_000_000,
        VERSION_ROTATED_US => 1,
        _ => return None,
    };
    let kind = match r.u8()? {
        0 => TokenKind::Access,
        1 => TokenKind::Refresh,
        _ => return None,
    };
    let grant_id = GrantId(r.take(16)?.try_into().ok()?);
    let issued_at = r.i64()?;
    let expires_at = r.i64()?;
    let rotated_at_us = match r.i64()? {
        i64::MIN => None,
        t => Some(t.checked_mul(rotated_scale)?),
    };
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
        rotated_at_us,
    })
}

/// Reads only `expires_at` of an encoded record.
pub fn token_expires_at(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.get(EXPIRES_AT)?.try_into().ok()?))
}

/// Encodes a live code.
pub fn encode_code(r: &CodeRecord) -> Vec<u8> {
    let scopes = r.scopes.to_string();
    let mut out = Vec::with_capacity(
        40 + r.client_id.len()
            + r.redirect_uri.len()
            + r.code_challenge.len()
            + scopes.len()
            + r.resource.len()
            + r.subject.len(),
    );
    out.push(TAG_LIVE_CODE);
    out.extend_from_slice(&r.expires_at.to_be_bytes());
    out.extend_from_slice(&r.grant_id.0);
    out.push(u8::from(r.redirect_uri_explicit));
    for s in [
        &r.client_id,
        &r.redirect_uri,
        &r.code_challenge,
        &scopes,
        &r.resource,
        &r.subject,
    ] {
        put_str(&mut out, s);
    }
    out
}

/// Encodes a redeemed-code marker (25 bytes).
pub fn encode_used_code(r: &UsedCodeRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(25);
    out.push(TAG_USED_CODE);
    out.extend_from_slice(&r.forget_at.to_be_bytes());
    out.extend_from_slice(&r.grant_id.0);
    out
}

/// Decodes a code tree value; `None` if the bytes are not a valid one.
pub fn decode_code(bytes: &[u8]) -> Option<StoredCode> {
    let mut r = Reader { bytes, at: 0 };
    let tag = r.u8()?;
    let expires = r.i64()?;
    let grant_id = GrantId(r.take(16)?.try_into().ok()?);
    match tag {
        TAG_USED_CODE if r.at == bytes.len() => Some(StoredCode::Used(UsedCodeRecord {
            grant_id,
            forget_at: expires,
        })),
        TAG_LIVE_CODE => {
            let redirect_uri_explicit = match r.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            let mut next = || r.str().flatten().map(str::to_owned);
            let (client_id, redirect_uri, code_challenge) = (next()?, next()?, next()?);
            let scopes = Scopes::parse(&next()?).ok()?;
            let (resource, subject) = (next()?, next()?);
            Some(StoredCode::Live(CodeRecord {
                grant_id,
                client_id,
                redirect_uri,
                redirect_uri_explicit,
                code_challenge,
                scopes,
                resource,
                subject,
                expires_at: expires,
            }))
        }
        _ => None,
    }
}

/// Reads only the expiry (or forget time) of an encoded code tree value.
pub fn code_expires(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(
        bytes.get(CODE_EXPIRES)?.try_into().ok()?,
    ))
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
            rotated_at_us: rotated,
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
    fn rotation_times_are_microseconds_and_version_1_records_still_read() {
        // A live token keeps the version-1 layout, readable by older builds.
        assert_eq!(encode_token(&sample(None, None)).first(), Some(&1));
        let rotated = encode_token(&sample(None, Some(1_800_000_000_123_456)));
        assert_eq!(rotated.first(), Some(&2));
        assert_eq!(
            decode_token(&rotated).unwrap().rotated_at_us,
            Some(1_800_000_000_123_456)
        );
        // A version-1 record written by an older build holds whole seconds.
        let mut old = rotated.clone();
        old[0] = 1;
        old[34..42].copy_from_slice(&1_800_000_000i64.to_be_bytes());
        assert_eq!(
            decode_token(&old).unwrap().rotated_at_us,
            Some(1_800_000_000_000_000)
        );
        // Seconds too large to scale are refused, not wrapped.
        old[34..42].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(decode_token(&old).is_none());
    }

    fn code() -> CodeRecord {
        CodeRecord {
            grant_id: GrantId([9; 16]),
            client_id: "client".into(),
            redirect_uri: "http://127.0.0.1:8765/callback".into(),
            redirect_uri_explicit: true,
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            scopes: Scopes::parse("mcp:read").unwrap(),
            resource: "http://localhost:8000/mcp".into(),
            subject: "demo_user".into(),
            expires_at: 1_800_000_060,
        }
    }

    #[test]
    fn code_values_round_trip() {
        let bytes = encode_code(&code());
        let Some(StoredCode::Live(back)) = decode_code(&bytes) else {
            panic!("not a live code");
        };
        assert_eq!(format!("{back:?}"), format!("{:?}", code()));
        assert_eq!(code_expires(&bytes), Some(1_800_000_060));

        let used = UsedCodeRecord {
            grant_id: GrantId([3; 16]),
            forget_at: 1_800_086_400,
        };
        let bytes = encode_used_code(&used);
        assert_eq!(bytes.len(), 25);
        let Some(StoredCode::Used(back)) = decode_code(&bytes) else {
            panic!("not a used code");
        };
        assert_eq!(
            (back.grant_id, back.forget_at),
            (used.grant_id, used.forget_at)
        );
        assert_eq!(code_expires(&bytes), Some(1_800_086_400));
    }

    #[test]
    fn garbage_code_values_are_refused() {
        let bytes = encode_code(&code());
        for cut in 0..bytes.len() {
            assert!(decode_code(&bytes[..cut]).is_none());
        }
        let mut used = encode_used_code(&UsedCodeRecord {
            grant_id: GrantId([3; 16]),
            forget_at: 1,
        });
        used.push(0);
        assert!(decode_code(&used).is_none());
        assert!(decode_code(b"{\"json\":1}").is_none());
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
