//! Authorization request validation (OAuth 2.1 §4.1.1, §4.1.2.1; RFC 7636; RFC 8707).
//!
//! Validation runs in two phases. Until the client and its redirect URI are verified,
//! every error is shown to the user as a page and never redirected (otherwise the server
//! becomes an open redirector, OAuth 2.1 §7.13.2). After that, errors go back to the client
//! as a redirect carrying `error`, `state` and `iss` (RFC 9207), but only for clients the
//! operator added ([`Client::may_receive_early_errors`]). For a dynamically registered or
//! document client those errors, found before the user has interacted, are shown as a page
//! too: anyone can register a redirect URI, and an authorization server that redirects a
//! bad request there at once is an open redirector for whoever registered it (RFC 9700
//! §4.11.2). Errors after the user has interacted (denial) still go back to the client.

use std::borrow::Cow;

use url::Url;

use super::{error::ErrorCode, params::Params};
use crate::{
    config::Settings,
    domain::{
        client::{Client, GrantType},
        pkce::CodeChallenge,
        redirect,
        scope::{Scopes, OFFLINE_ACCESS},
    },
};

/// A request that passed every check; ready for the login and consent page.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The verified client.
    pub client: Client,
    /// Where the code goes.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent.
    pub redirect_uri_explicit: bool,
    /// Opaque client state, echoed exactly.
    pub state: Option<String>,
    /// S256 challenge.
    pub code_challenge: CodeChallenge,
    /// Scopes to grant.
    pub scopes: Scopes,
    /// The resource the grant is bound to: always our canonical MCP resource, whichever of
    /// its spellings the request used (`…/mcp/` included).
    pub resource: String,
}

/// Why an authorization request failed.
#[derive(Debug, Clone)]
pub enum AuthorizeError {
    /// Before the client and redirect URI are verified, or for a client that may not
    /// receive early errors: show a page, never redirect.
    Page(Cow<'static, str>),
    /// After: redirect to the client with these values.
    Redirect {
        /// The verified redirect URI.
        redirect_uri: String,
        /// The error code.
        code: ErrorCode,
        /// A short description.
        description: &'static str,
        /// The client's state.
        state: Option<String>,
    },
}

/// Phase 1 input: the parameters needed to look the client up.
pub fn client_id(params: &Params) -> Result<&str, AuthorizeError> {
    if params.is_duplicated("client_id") {
        return Err(page("The client_id parameter is repeated."));
    }
    params
        .get("client_id")
        .ok_or(page("The request has no client_id."))
}

fn page(message: &'static str) -> AuthorizeError {
    AuthorizeError::Page(Cow::Borrowed(message))
}

/// Validates the whole request against the looked-up client.
pub fn validate(
    params: &Params,
    client: Option<Client>,
    settings: &Settings,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let Some(client) = client else {
        return Err(page(
            "This application is not registered with this server (unknown client_id).",
        ));
    };
    if params.is_duplicated("redirect_uri") {
        return Err(page("The redirect_uri parameter is repeated."));
    }
    let (redirect_uri, explicit) =
        match params.get("redirect_uri") {
            Some(uri) => {
                if !client
                    .redirect_uris
                    .iter()
                    .any(|r| redirect::matches(r, uri))
                {
                    return Err(page(
                        "The redirect_uri is not registered for this application.",
                    ));
                }
                (uri.to_owned(), true)
            }
            // OAuth 2.1 §2.3.2: may be omitted only when exactly one is registered.
            None => match client.redirect_uris.as_slice() {
                [only] => (only.clone(), false),
                _ => return Err(page(
                    "The request has no redirect_uri and the application has several registered.",
                )),
            },
        };
    // The same syntax rules as at registration, whatever was stored before they existed.
    let Ok(parsed) = Url::parse(&redirect_uri) else {
        return Err(page("The redirect_uri is not a valid URI."));
    };
    if redirect::check_syntax(&redirect_uri).is_err() {
        return Err(page("The redirect_uri is not a valid URI."));
    }
    // A private-use scheme is checked again as a registration would be now: one registered
    // while they were accepted and used after the operator turned them off, or whose scheme
    // a later version denies, is refused.
    if !matches!(parsed.scheme(), "http" | "https") {
        if !redirect::is_private_use(&parsed) {
            return Err(page(
                "This server does not accept the redirect_uri's scheme.",
            ));
        }
        if !settings.config.private_use_redirects {
            return Err(page(
                "This server does not accept redirect URIs with a private-use scheme (such as cursor://).",
            ));
        }
    }

    // From here on the redirect URI is verified: errors go back to operator-added clients,
    // and are shown here for the others (RFC 9700 §4.11.2).
    let state = params.get("state").map(str::to_owned);
    let redirects = client.may_receive_early_errors();
    let fail = |code: ErrorCode, description| {
        if redirects {
            AuthorizeError::Redirect {
                redirect_uri: redirect_uri.clone(),
                code,
                description,
                state: state.clone(),
            }
        } else {
            AuthorizeError::Page(Cow::Owned(format!(
                "This application sent an invalid authorization request ({}: {description}).",
                code.as_str()
            )))
        }
    };
    if params.any_duplicate().is_some() {
        return Err(fail(ErrorCode::InvalidRequest, "a parameter is repeated"));
    }
    match params.get("response_type") {
        None => return Err(fail(ErrorCode::InvalidRequest, "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ))
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(fail(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code grant",
        ));
    }
    let Some(challenge) = params.get("code_challenge") else {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "code_challenge is required (PKCE S256)",
        ));
    };
    let code_challenge = CodeChallenge::parse(challenge, params.get("code_challenge_method"))
        .map_err(|e| match e {
            crate::domain::pkce::PkceError::UnsupportedMethod => fail(
                ErrorCode::InvalidRequest,
                "transform algorithm not supported, use S256",
            ),
            _ => fail(ErrorCode::InvalidRequest, "code_challenge is malformed"),
        })?;
    let scopes = match params.get("scope") {
        Some(s) => {
            let requested = Scopes::parse(s)
                .map_err(|_| fail(ErrorCode::InvalidScope, "scope is malformed"))?;
            // `offline_access` asks for a refresh token (SEP-2207): always accepted, and
            // on its own it means the client's usual scopes plus a refresh token.
            let access = requested.for_access_token();
            if !access.is_subset(&client.scopes) || !access.is_subset(&settings.scopes) {
                return Err(fail(
                    ErrorCode::InvalidScope,
                    "requested scope is not allowed",
                ));
            }
            if access.is_empty() && requested.contains(OFFLINE_ACCESS) {
                client.scopes.with(OFFLINE_ACCESS)
            } else {
                requested
            }
        }
        None => client.scopes.clone(),
    };
    if scopes.for_access_token().is_empty() {
        return Err(fail(ErrorCode::InvalidScope, "no scope could be granted"));
    }
    // RFC 8707: the only resource here is our MCP endpoint. Clients that omit `resource`
    // (some do) are bound to it anyway, so every token has an audience.
    if params.is_duplicated("resource") {
        return Err(fail(
            ErrorCode::InvalidTarget,
            "only one resource is supported",
        ));
    }
    if let Some(resource) = params.get("resource") {
        if !settings.is_own_resource(resource) {
            return Err(fail(ErrorCode::InvalidTarget, "unknown resource"));
        }
    }
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        redirect_uri_explicit: explicit,
        state,
        code_challenge,
        scopes,
        resource: settings.resource.clone(),
    })
}

/// The redirect back to the client: `redirect_uri` with `pairs` appended to its query
/// (existing query parameters are kept, OAuth 2.1 §4.1.2).
pub fn redirect_url(redirect_uri: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Some(url.into())
}

/// The error redirect for an [`AuthorizeError::Redirect`].
pub fn error_redirect(
    redirect_uri: &str,
    code: ErrorCode,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Option<String> {
    let mut pairs = vec![("error", code.as_str()), ("error_description", description)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    redirect_url(redirect_uri, &pairs)
}

/// Whether the authorization request asks for a fresh password login (`prompt=login`, as
/// in OpenID Connect Core §3.1.2.1; `prompt` is a space-separated list). Any `prompt`
/// parameter naming `login` counts, repeated or not.
pub fn prompts_login(params: &Params) -> bool {
    params
        .pairs()
        .iter()
        .any(|(k, v)| k == "prompt" && v.split_ascii_whitespace().any(|p| p == "login"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        domain::client::{AuthMethod, ClientOrigin},
    };

    fn client(uris: &[&str]) -> Client {
        Client {
            client_id: "c".into(),
            secret_digest: None,
            auth_method: AuthMethod::None,
            client_name: None,
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: Scopes::parse("mcp:read mcp:write").unwrap(),
            issued_at: 0,
            extra: Default::default(),
            origin: ClientOrigin::Operator,
            used: true,
        }
    }

    const CH: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn run(q: &str, uris: &[&str]) -> Result<AuthorizationRequest, AuthorizeError> {
        let settings = Config::default().settings(8000).unwrap();
        validate(&Params::parse(q.as_bytes()), Some(client(uris)), &settings)
    }

    #[test]
    fn accepts_a_good_request_and_defaults() {
        let q = format!(
            "client_id=c&response_type=code&code_challenge={CH}&code_challenge_method=S256&state=s"
        );
        let r = run(&q, &["http://127.0.0.1:1/cb"]).unwrap();
        assert!(!r.redirect_uri_explicit);
        assert_eq!(r.scopes.to_string(), "mcp:read mcp:write");
        assert_eq!(r.resource, "http://localhost:8000/mcp");
    }

    #[test]
    fn unknown_redirect_is_a_page_error() {
        let q = "client_id=c&redirect_uri=https://evil.example/cb";
        assert!(matches!(
            run(q, &["https://a.example/cb"]),
            Err(AuthorizeError::Page(_))
        ));
        assert!(matches!(
            run(
                "client_id=c",
                &["https://a.example/cb", "https://b.example/cb"]
            ),
            Err(AuthorizeError::Page(_))
        ));
    }

    #[test]
    fn a_stored_redirect_uri_that_breaks_the_syntax_rules_is_never_used() {
        // Registered before the rules existed: the request matches it exactly, yet the
        // page is shown, with or without redirect_uri in the request.
        let nul = "https://a.example/cb\0";
        let q = format!("client_id=c&redirect_uri=https%3A%2F%2Fa.example%2Fcb%00&response_type=code&code_challenge={CH}");
        assert!(matches!(run(&q, &[nul]), Err(AuthorizeError::Page(_))));
        let q = format!("client_id=c&response_type=code&code_challenge={CH}");
        assert!(matches!(run(&q, &[nul]), Err(AuthorizeError::Page(_))));
        let userinfo = "https://a.example@evil.example/cb";
        assert!(matches!(run(&q, &[userinfo]), Err(AuthorizeError::Page(_))));
    }

    #[test]
    fn early_errors_are_pages_for_clients_the_operator_did_not_add() {
        let settings = Config::default().settings(8000).unwrap();
        let q = format!("client_id=c&response_type=token&code_challenge={CH}&state=s");
        for origin in [ClientOrigin::Dynamic, ClientOrigin::Document] {
            let mut c = client(&["https://a.example/cb"]);
            c.origin = origin;
            match validate(&Params::parse(q.as_bytes()), Some(c), &settings) {
                Err(AuthorizeError::Page(m)) => assert!(m.contains("unsupported_response_type")),
                other => panic!("{origin:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn offline_access_is_accepted_and_kept_on_the_grant() {
        let base = format!(
            "client_id=c&response_type=code&code_challenge={CH}&code_challenge_method=S256"
        );
        let r = run(
            &format!("{base}&scope=mcp:read+offline_access"),
            &["https://a.example/cb"],
        )
        .unwrap();
        assert_eq!(r.scopes.to_string(), "mcp:read offline_access");
        assert_eq!(r.scopes.for_access_token().to_string(), "mcp:read");
        let r = run(
            &format!("{base}&scope=offline_access"),
            &["https://a.example/cb"],
        )
        .unwrap();
        assert_eq!(r.scopes.to_string(), "mcp:read mcp:write offline_access");
        assert!(run(
            &format!("{base}&scope=offline_access+admin"),
            &["https://a.example/cb"]
        )
        .is_err());
    }

    #[test]
    fn the_resource_with_a_trailing_slash_is_ours_and_bound_canonically() {
        let base = format!(
            "client_id=c&response_type=code&code_challenge={CH}&code_challenge_method=S256"
        );
        for resource in ["http://localhost:8000/mcp/", "http://127.0.0.1:8000/mcp/"] {
            let q = format!("{base}&resource={resource}");
            let r = run(&q, &["https://a.example/cb"]).unwrap();
            assert_eq!(r.resource, "http://localhost:8000/mcp");
        }
        let q = format!("{base}&resource=http://localhost:8000/mcp//");
        assert!(run(&q, &["https://a.example/cb"]).is_err());
    }

    #[test]
    fn private_use_redirects_are_refused_when_turned_off() {
        let mut config = Config::default();
        config.private_use_redirects = false;
        let settings = config.settings(8000).unwrap();
        let q = format!(
            "client_id=c&response_type=code&code_challenge={CH}&code_challenge_method=S256"
        );
        let c = client(&["cursor://anysphere.cursor-mcp/oauth/callback"]);
        assert!(matches!(
            validate(&Params::parse(q.as_bytes()), Some(c.clone()), &settings),
            Err(AuthorizeError::Page(_))
        ));
        let on = Config::default().settings(8000).unwrap();
        assert!(validate(&Params::parse(q.as_bytes()), Some(c), &on).is_ok());
    }

    #[test]
    fn a_stored_redirect_uri_whose_scheme_is_denied_now_is_refused() {
        // Registered before its scheme was denied (a record from an older version).
        let settings = Config::default().settings(8000).unwrap();
        let q = format!(
            "client_id=c&response_type=code&code_challenge={CH}&code_challenge_method=S256"
        );
        for uri in [
            "search-ms://query/x",
            "javascript://x/%0aalert(1)",
            "myapp:cb",
        ] {
            let c = client(&[uri]);
            assert!(
                matches!(
                    validate(&Params::parse(q.as_bytes()), Some(c), &settings),
                    Err(AuthorizeError::Page(_))
                ),
                "{uri}"
            );
        }
    }

    #[test]
    fn later_errors_redirect() {
        let q = format!("client_id=c&response_type=code&code_challenge={CH}&code_challenge_method=S256&resource=https://other.example/mcp");
        match run(&q, &["https://a.example/cb"]) {
            Err(AuthorizeError::Redirect { code, .. }) => {
                assert_eq!(code, ErrorCode::InvalidTarget)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_redirect_keeps_query() {
        let u = error_redirect(
            "https://a.example/cb?x=1",
            ErrorCode::AccessDenied,
            "no",
            Some("s t"),
            "http://i",
        )
        .unwrap();
        assert_eq!(u, "https://a.example/cb?x=1&error=access_denied&error_description=no&state=s+t&iss=http%3A%2F%2Fi");
    }

    #[test]
    fn prompt_login_is_read_from_any_prompt_parameter() {
        for (form, login) in [
            (&b"prompt=login"[..], true),
            (b"prompt=consent+login", true),
            (b"prompt=none&prompt=login", true),
            (b"prompt=consent", false),
            (b"prompt=logins", false),
            (b"x=login", false),
        ] {
            assert_eq!(prompts_login(&Params::parse(form)), login, "{form:?}");
        }
    }
}
