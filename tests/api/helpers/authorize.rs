//! The authorization request and the login and consent page, driven the way a browser would:
//! `TestApp` steps from `GET /authorize` to the code (OAuth 2.1 §4.1.1-§4.1.2), the PKCE pair
//! (RFC 7636) and the demo client's request parameters.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::Rng as _;
use reqwest::{header, Response};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::{
    attr, cookie_pairs, find_tags, hidden_inputs, Reply, TestApp, ALL_SCOPES, DEMO_CLIENT_ID,
    DEMO_PASSWORD, DEMO_REDIRECT_URI, DEMO_USER, FLOW_STATE,
};

impl TestApp {
    // ----- /authorize and the consent page ------------------------------------------------

    pub async fn get_authorize(&self, params: &[(&str, &str)]) -> Response {
        self.client
            .get(self.authorize_url(params))
            .send()
            .await
            .expect("GET /authorize")
    }

    pub async fn post_authorize(&self, params: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/authorize"))
            .form(params)
            .send()
            .await
            .expect("POST /authorize")
    }

    /// GET /authorize and scrape what a browser would keep: cookies, form action, hidden fields.
    pub async fn consent_page(&self, params: &[(&str, &str)]) -> ConsentPage {
        let resp = self.get_authorize(params).await;
        let cookies = cookie_pairs(resp.headers());
        let reply = Reply::read(resp).await;
        let action = find_tags(&reply.body, "form")
            .first()
            .and_then(|form| attr(form, "action").map(str::to_owned))
            .filter(|action| !action.is_empty())
            .unwrap_or_else(|| "/authorize/decision".to_owned());
        let base = Url::parse(&self.url("/authorize")).expect("valid authorize URL");
        let action_url = base
            .join(&action)
            .expect("form action is a valid URL reference")
            .to_string();
        ConsentPage {
            cookie: (!cookies.is_empty()).then(|| cookies.join("; ")),
            action_url,
            hidden: hidden_inputs(&reply.body),
            reply,
        }
    }

    /// Posts the consent form the way a browser would: every hidden field of `page`, with
    /// `fields` added (replacing hidden fields of the same name), and `cookie` as `Cookie`.
    pub async fn submit_consent(
        &self,
        page: &ConsentPage,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .post(&page.action_url)
            .form(&page.form_body(fields));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("POST /authorize/decision")
    }

    /// Opens the consent page for `params`, logs in and approves or denies.
    pub async fn login_and_consent(
        &self,
        params: &[(&str, &str)],
        username: &str,
        password: &str,
        approve: bool,
    ) -> Response {
        let page = self.consent_page(params).await;
        assert_eq!(
            page.reply.status, 200,
            "the consent page should render: {}",
            page.reply.body
        );
        let action = if approve { "approve" } else { "deny" };
        self.submit_consent(
            &page,
            page.cookie.as_deref(),
            &[
                ("username", username),
                ("password", password),
                ("action", action),
            ],
        )
        .await
    }

    /// Runs the code flow for any client as demo_user and returns `(code, verifier)`.
    pub async fn obtain_code_for(
        &self,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
    ) -> (String, String) {
        let (verifier, challenge) = pkce_pair();
        let params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("scope", scope),
            ("state", FLOW_STATE),
        ];
        let reply = Reply::read(
            self.login_and_consent(&params, DEMO_USER, DEMO_PASSWORD, true)
                .await,
        )
        .await;
        assert_eq!(
            reply.status, 303,
            "approval should redirect: {}",
            reply.body
        );
        let query = reply.location_query();
        assert_eq!(query.get("state").map(String::as_str), Some(FLOW_STATE));
        let code = query
            .get("code")
            .unwrap_or_else(|| panic!("no code in {}", reply.location()))
            .clone();
        (code, verifier)
    }

    /// Whole flow for demo_client with both scopes: `(code, verifier, redirect_uri)`.
    pub async fn obtain_code(&self) -> (String, String, String) {
        let (code, verifier) = self
            .obtain_code_for(DEMO_CLIENT_ID, DEMO_REDIRECT_URI, ALL_SCOPES)
            .await;
        (code, verifier, DEMO_REDIRECT_URI.to_owned())
    }
}

/// What a browser keeps from the consent page.
pub struct ConsentPage {
    pub reply: Reply,
    /// All cookies set by the page, as a ready `Cookie` header value (`name=value; ...`).
    pub cookie: Option<String>,
    /// Absolute URL the form posts to.
    pub action_url: String,
    /// Every `<input type="hidden">` as `(name, decoded value)`.
    pub hidden: Vec<(String, String)>,
}

impl ConsentPage {
    /// The body a browser posts: every hidden field, with `fields` added (replacing hidden
    /// fields of the same name).
    pub fn form_body(&self, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut body: Vec<(String, String)> = self
            .hidden
            .iter()
            .filter(|(name, _)| !fields.iter().any(|(field, _)| field == name))
            .cloned()
            .collect();
        body.extend(
            fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        body
    }
}

/// PKCE pair: 32 random bytes as base64url verifier, S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = challenge_for(&verifier);
    (verifier, challenge)
}

/// `BASE64URL(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()).as_slice())
}

/// Demo-client authorize parameters for a valid request; tests tweak them with
/// [`set_param`] / [`remove_param`].
pub fn demo_authorize_params<'a>(challenge: &'a str, state: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", DEMO_REDIRECT_URI),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", ALL_SCOPES),
        ("state", state),
    ]
}

/// Replaces every `key` parameter with a single `key=value`.
pub fn set_param<'a>(params: &mut Vec<(&'a str, &'a str)>, key: &'a str, value: &'a str) {
    remove_param(params, key);
    params.push((key, value));
}

pub fn remove_param(params: &mut Vec<(&str, &str)>, key: &str) {
    params.retain(|(name, _)| *name != key);
}
