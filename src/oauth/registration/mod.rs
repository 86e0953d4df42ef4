//! Dynamic client registration metadata (RFC 7591 §2, §3.1), validated into a
//! [`NewClient`], and the registration response document (§3.2.1).
//!
//! Rules beyond RFC 7591: redirect URIs must be https, loopback http (MCP authorization,
//! "Communication Security") or a private-use scheme of a native app (RFC 8252 §7.1,
//! unless turned off), without control characters, whitespace or userinfo
//! ([`crate::domain::redirect`]), `token_endpoint_auth_method` defaults to
//! `client_secret_basic` as the RFC says, and grants are limited to the authorization code
//! flow, refresh, and (confidential clients only) client credentials.
//!
//! The metadata is a request (RFC 7591 §3.2.1: the server may replace requested values):
//! grant types, response types, auth methods, scopes and `application_type` values this
//! server does not support are dropped or replaced, and the response carries the effective
//! metadata ([`response`]). Only what is left must be usable: a grant type, `code` among
//! the response types of a code-flow client, and for a document the authorization code
//! grant with `none`. What is malformed (wrong JSON types, bad scope syntax, unbounded or
//! control-character text, bad redirect URIs) is still refused.
//!
//! Every field is bounded ([`MAX_REDIRECT_URIS`], [`MAX_URI_BYTES`], [`MAX_NAME_CHARS`],
//! [`MAX_CONTACTS`], [`MAX_CONTACT_BYTES`], [`MAX_LIST_ITEMS`]) and text shown to people or
//! stored has no control characters: registration is open to anyone who can reach the
//! server, so what one request may make the server store and display is kept small.
//!
//! Client ID metadata documents carry the same metadata and go through the same
//! [`validate`], with the few rules of their own that [`MetadataSource::Document`] names.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::{
    config::Settings,
    domain::{
        client::{AuthMethod, GrantType, NewClient, RegisteredClient},
        redirect::{is_private_use, validate_for_registration, RedirectUriError},
        scope::{Scopes, OFFLINE_ACCESS},
    },
};

use super::error::{ErrorCode, ProtocolError};

/// Optional RFC 7591 string fields that are stored and echoed back.
const ECHOED_STRINGS: &[&str] = &[
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
    "application_type",
];

/// Most redirect URIs per client.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Longest redirect URI, and longest of the other URI fields (`client_uri`, `logo_uri`, ...).
pub const MAX_URI_BYTES: usize = 2000;
/// Longest `client_name`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most `contacts` entries.
pub const MAX_CONTACTS: usize = 10;
/// Longest `contacts` entry (an e-mail address is at most 254 bytes).
pub const MAX_CONTACT_BYTES: usize = 320;
/// Most entries of `grant_types` and `response_types`.
pub const MAX_LIST_ITEMS: usize = 10;

/// Where client metadata comes from; the rules differ in a few places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    /// An RFC 7591 registration request: `token_endpoint_auth_method` defaults to
    /// `client_secret_basic` and the server mints the secret.
    Registration,
    /// A client ID metadata document (see [`super::client_document`]): always a public
    /// client, since a document cannot carry a shared secret (draft §4.1); `client_name`
    /// is required (MCP 2025-11-25).
    Document,
}

/// Metadata that cannot be accepted (`invalid_client_metadata`, RFC 7591 §3.2.2).
fn meta(description: impl Into<Cow<'static, str>>) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidClientMetadata, description)
}

/// Text stored and shown back (names, contacts, URIs) carries no control characters, and
/// no bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E,
/// U+2066–U+2069): an unterminated right-to-left override in a client's name would reorder
/// the consent page's own words after it ("Trojan Source", CVE-2021-42574).
fn has_control(s: &str) -> bool {
    s.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    })
}

/// A redirect URI that cannot be accepted (`invalid_redirect_uri`, RFC 7591 §3.2.2).
fn bad_redirect(description: &'static str) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidRedirectUri, description)
}

/// An array of at most `max` strings.
fn string_array(v: &Value, field: &'static str, max: usize) -> Result<Vec<String>, ProtocolError> {
    let Value::Array(items) = v else {
        return Err(meta(format!("{field} must be an array of strings")));
    };
    if items.len() > max {
        return Err(meta(format!("{field} has more than {max} entries")));
    }
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_owned)
                .ok_or_else(|| meta(format!("{field} must be an array of strings")))
        })
        .collect()
}

/// The auth methods a client says it can use: `token_endpoint_auth_methods_supported`
/// (draft "RP metadata choices"; ChatGPT lists `none` and `private_key_jwt`), in its order.
fn offered_methods(doc: &Map<String, Value>) -> Result<Vec<String>, ProtocolError> {
    match doc.get("token_endpoint_auth_methods_supported") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => string_array(v, "token_endpoint_auth_methods_supported", MAX_LIST_ITEMS),
    }
}

/// The token endpoint auth method the client gets. The singular field is the client's
/// preference, the plural list what it can do; a method this server does not support
/// (`private_key_jwt`, ...) is replaced (RFC 7591 §3.2.1) by the first supported one the
/// list offers, else by `none` for a registration (a client that wanted a key-based method
/// holds no shared secret; PKCE protects a public client), and a document must be able to
/// use `none` (a document cannot carry a secret, draft §4.1).
fn auth_method(
    doc: &Map<String, Value>,
    source: MetadataSource,
) -> Result<AuthMethod, ProtocolError> {
    let offered = offered_methods(doc)?;
    let preferred = match doc.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(meta("token_endpoint_auth_method must be a string")),
    };
    match source {
        MetadataSource::Registration => Ok(match preferred.and_then(AuthMethod::parse) {
            Some(m) => m,
            None => offered
                .iter()
                .find_map(|m| AuthMethod::parse(m))
                // RFC 7591 §2: an omitted method means client_secret_basic.
                .unwrap_or(if preferred.is_none() {
                    AuthMethod::ClientSecretBasic
                } else {
                    AuthMethod::None
                }),
        }),
        MetadataSource::Document => {
            let none_offered = offered.iter().any(|m| m == "none");
            match preferred {
                Some("none") => Ok(AuthMethod::None),
                None if offered.is_empty() || none_offered => Ok(AuthMethod::None),
                Some(_) if none_offered => Ok(AuthMethod::None),
                _ => Err(meta(
                    "token_endpoint_auth_method must be none, or token_endpoint_auth_methods_supported must list none (a document cannot carry a shared secret, and private_key_jwt is not supported)",
                )),
            }
        }
    }
}

/// The scope a client is registered with, from the scope it asked for: the tokens this
/// server knows, plus `offline_access`; unknown ones are dropped (RFC 7591 §3.2.1; a
/// vendor's document cannot know this server's scopes). When nothing it may use on the MCP
/// server is left, the default scopes (`None`), with `offline_access` if it was asked for.
fn granted_scopes(asked: &Scopes, settings: &Settings) -> Option<Scopes> {
    let kept = asked.retain_known(&settings.scopes);
    if !kept.for_access_token().is_empty() {
        return Some(kept);
    }
    kept.contains(OFFLINE_ACCESS)
        .then(|| settings.default_scopes.with(OFFLINE_ACCESS))
}

/// Validates a registration request body.
pub fn parse(body: &[u8], settings: &Settings) -> Result<NewClient, ProtocolError> {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return Err(meta("the body must be a JSON object"));
    };
    validate(&doc, settings, MetadataSource::Registration)
}

/// Validates client metadata (RFC 7591 §2) from a registration request or a metadata
/// document.
pub fn validate(
    doc: &Map<String, Value>,
    settings: &Settings,
    source: MetadataSource,
) -> Result<NewClient, ProtocolError> {
    let redirect_uris = match doc.get("redirect_uris") {
        Some(Value::Array(items)) if items.len() > MAX_REDIRECT_URIS => {
            return Err(bad_redirect("at most 20 redirect URIs"))
        }
        Some(v) => string_array(v, "redirect_uris", MAX_REDIRECT_URIS)?,
        None => Vec::new(),
    };
    if redirect_uris.is_empty() {
        return Err(bad_redirect("redirect_uris is required"));
    }
    for uri in &redirect_uris {
        if uri.len() > MAX_URI_BYTES {
            return Err(bad_redirect("redirect URI too long"));
        }
        validate_for_registration(uri, settings.config.private_use_redirects).map_err(|e| {
            let d = match e {
                RedirectUriError::NotAbsolute => "redirect URI must be an absolute URI",
                RedirectUriError::Fragment => "redirect URI must not contain a fragment",
                RedirectUriError::Character => {
                    "redirect URI must not contain control characters or whitespace"
                }
                RedirectUriError::Userinfo => {
                    "redirect URI must not contain a username or password"
                }
                RedirectUriError::PrivateUseOff => {
                    "redirect URI must use https, or http on localhost, 127.0.0.1 or [::1] (this server does not accept private-use schemes)"
                }
                _ => "redirect URI must use https, http on localhost, 127.0.0.1 or [::1], or a private-use scheme of a native app (scheme://host/path or scheme:/path, not javascript, data, file, ws, ftp, about, blob, intent or a browser's own)",
            };
            bad_redirect(d)
        })?;
    }

    let auth_method = auth_method(doc, source)?;
    // A private-use scheme names a native app, and native apps are public clients (RFC 8252
    // §8.4): any app on the device may claim the scheme, so the URI says nothing about who
    // holds a secret. A client asking for a secret with such a URI is refused rather than
    // quietly made public, since it expects to authenticate.
    if auth_method != AuthMethod::None
        && redirect_uris
            .iter()
            .any(|uri| url::Url::parse(uri).is_ok_and(|u| is_private_use(&u)))
    {
        return Err(bad_redirect(
            "private-use redirect URIs are for public clients: register with token_endpoint_auth_method none",
        ));
    }
    if source == MetadataSource::Document
        && (doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at"))
    {
        return Err(meta(
            "client_secret and client_secret_expires_at must not appear in a document",
        ));
    }

    // Unknown grant types (claude.ai and ChatGPT list jwt-bearer, VS Code device_code) are
    // dropped: the metadata is a request, and the server assigns what it supports (RFC 7591
    // §3.2.1). Only what is left must make sense.
    let grant_types = match doc.get("grant_types") {
        None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        Some(v) => {
            let mut out = Vec::new();
            for grant in string_array(v, "grant_types", MAX_LIST_ITEMS)?
                .iter()
                .filter_map(|g| GrantType::parse(g))
            {
                if !out.contains(&grant) {
                    out.push(grant);
                }
            }
            out
        }
    };
    if grant_types.is_empty() {
        return Err(meta(
            "grant_types must include authorization_code, refresh_token or client_credentials",
        ));
    }
    if source == MetadataSource::Document && !grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(meta("grant_types must include authorization_code"));
    }
    if grant_types.contains(&GrantType::ClientCredentials) {
        if auth_method == AuthMethod::None {
            return Err(meta("client_credentials requires a confidential client"));
        }
        if !settings.config.registered_client_credentials {
            return Err(meta(
                "client_credentials is not available to dynamically registered clients",
            ));
        }
    }
    // Likewise for response types (`id_token` in ChatGPT's document): `code` must remain
    // when the client is to use the authorization code grant.
    if let Some(v) = doc.get("response_types") {
        let types = string_array(v, "response_types", MAX_LIST_ITEMS)?;
        if grant_types.contains(&GrantType::AuthorizationCode)
            && !types.is_empty()
            && !types.iter().any(|t| t == "code")
        {
            return Err(meta("response_types must include code"));
        }
    }

    let client_name = match doc.get("client_name") {
        None | Some(Value::Null) if source == MetadataSource::Document => {
            return Err(meta("client_name is required"))
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_NAME_CHARS && !has_control(s) => {
            Some(s.clone())
        }
        Some(_) => return Err(meta(
            "client_name must be a string of at most 200 characters, without control or bidirectional formatting characters",
        )),
    };
    let scopes = match doc.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let asked = Scopes::parse(s).map_err(|_| meta("scope is malformed"))?;
            granted_scopes(&asked, settings)
        }
        Some(_) => return Err(meta("scope must be a string")),
    };

    let mut extra = Map::new();
    for key in ECHOED_STRINGS {
        match doc.get(*key) {
            None | Some(Value::Null) => {}
            // SEP-837: `native` or `web`, recorded as sent; it never narrows the redirect
            // URIs (Cursor sends `web` with loopback and private-use URIs, claude.ai nothing).
            // Another value is not one we know: dropped, like other unsupported metadata.
            Some(Value::String(s))
                if *key == "application_type" && !matches!(s.as_str(), "native" | "web") => {}
            Some(Value::String(s)) if s.len() <= MAX_URI_BYTES && !has_control(s) => {
                extra.insert((*key).to_owned(), Value::String(s.clone()));
            }
            Some(_) => {
                return Err(meta(format!(
                    "{key} must be a string of at most {MAX_URI_BYTES} bytes, without control characters"
                )))
            }
        }
    }
    if let Some(v) = doc.get("contacts") {
        let contacts = string_array(v, "contacts", MAX_CONTACTS)?;
        if contacts
            .iter()
            .any(|c| c.len() > MAX_CONTACT_BYTES || has_control(c))
        {
            return Err(meta(format!(
                "each contact must be at most {MAX_CONTACT_BYTES} bytes, without control characters"
            )));
        }
        extra.insert("contacts".into(), Value::from(contacts));
    }
    // Requested client_id / client_secret and unknown fields (`jwks_uri`,
    // `token_endpoint_auth_signing_alg`, `token_endpoint_auth_methods_supported`, ...) are
    // ignored (RFC 7591 §3.1); the response shows the effective metadata.

    Ok(NewClient {
        client_name,
        redirect_uris,
        auth_method,
        grant_types,
        scopes,
        extra,
    })
}

/// The RFC 7591 §3.2.1 response: every registered field plus the credentials.
pub fn response(registered: &RegisteredClient) -> Value {
    let c = &registered.client;
    let mut doc = Map::new();
    doc.insert("client_id".into(), c.client_id.clone().into());
    if let Some(secret) = &registered.secret {
        doc.insert("client_secret".into(), secret.secret().into());
        doc.insert("client_secret_expires_at".into(), 0.into());
    }
    doc.insert("client_id_issued_at".into(), c.issued_at.into());
    doc.insert("redirect_uris".into(), c.redirect_uris.clone().into());
    doc.insert(
        "token_endpoint_auth_method".into(),
        c.auth_method.as_str().into(),
    );
    doc.insert(
        "grant_types".into(),
        c.grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .into(),
    );
    doc.insert("response_types".into(), vec!["code"].into());
    doc.insert("scope".into(), c.scopes.to_string().into());
    if let Some(name) = &c.client_name {
        doc.insert("client_name".into(), name.clone().into());
    }
    for (k, v) in &c.extra {
        doc.insert(k.clone(), v.clone());
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests;
