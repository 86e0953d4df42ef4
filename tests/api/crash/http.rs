//! The load clients' HTTP: one client per server lifetime that tells a request lost to the
//! kill (outcome unknown) from a wrong answer, and the OAuth steps the load is made of (code
//! flow, token, refresh, revocation, introspection).

use super::*;

/// Why a request did not give the answer the client wanted.
pub(super) enum Failure {
    /// Transport error after the kill began: the outcome is unknown and ignored.
    Lost,
    /// A wrong answer, or a transport error while the server was meant to be up.
    Unexpected(String),
}

/// HTTP client for one server lifetime (a fresh connection pool per server).
pub(super) struct Http {
    pub(super) client: Client,
    pub(super) base: String,
    /// Set just before the SIGKILL: from then on a transport error is an expected loss.
    pub(super) killing: Arc<AtomicBool>,
    /// Requests that were lost to a kill.
    pub(super) lost: Arc<AtomicUsize>,
}

impl Http {
    pub(super) fn new(port: u16, killing: Arc<AtomicBool>, lost: Arc<AtomicUsize>) -> Http {
        Http {
            client: Client::builder()
                .redirect(Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .expect("reqwest client"),
            base: format!("http://127.0.0.1:{port}"),
            killing,
            lost,
        }
    }

    pub(super) fn transport(&self, what: &str, error: &reqwest::Error) -> Failure {
        if self.killing.load(Ordering::SeqCst) {
            self.lost.fetch_add(1, Ordering::SeqCst);
            Failure::Lost
        } else {
            Failure::Unexpected(format!("{what}: {error} while the server was up"))
        }
    }

    pub(super) async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Reply, Failure> {
        let response = request
            .send()
            .await
            .map_err(|error| self.transport(what, &error))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let cookies = cookie_pairs(response.headers());
        let body = response
            .text()
            .await
            .map_err(|error| self.transport(what, &error))?;
        Ok(Reply {
            status,
            location,
            cookies,
            body,
        })
    }

    /// POST `form` to `path` as demo_client (Basic).
    pub(super) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Reply, Failure> {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
            .form(form);
        self.send(path, request).await
    }

    /// A 200 token response: `(access_token, refresh_token if any)`.
    pub(super) async fn token(
        &self,
        form: &[(&str, &str)],
    ) -> Result<(String, Option<String>), Failure> {
        let reply = self.post("/token", form).await?;
        if reply.status != 200 {
            return Err(reply.unexpected("/token"));
        }
        let body: Value =
            serde_json::from_str(&reply.body).map_err(|_| reply.unexpected("/token (not JSON)"))?;
        let access = body["access_token"]
            .as_str()
            .ok_or_else(|| reply.unexpected("/token (no access_token)"))?;
        Ok((
            access.to_owned(),
            body["refresh_token"].as_str().map(str::to_owned),
        ))
    }

    /// Login, consent and code exchange for demo_client: a new grant with both tokens.
    pub(super) async fn code_flow(&self) -> Result<(String, String), Failure> {
        let (verifier, challenge) = pkce_pair();
        let mut url = Url::parse(&format!("{}/authorize", self.base)).expect("URL");
        url.query_pairs_mut()
            .extend_pairs(demo_authorize_params(&challenge, "crash"));
        let page = self
            .send("/authorize", self.client.get(url.as_str()))
            .await?;
        if page.status != 200 {
            return Err(page.unexpected("GET /authorize"));
        }
        let mut form = hidden_inputs(&page.body);
        form.retain(|(name, _)| !matches!(name.as_str(), "username" | "password" | "action"));
        for (name, value) in [
            ("username", DEMO_USER),
            ("password", DEMO_PASSWORD),
            ("action", "approve"),
        ] {
            form.push((name.to_owned(), value.to_owned()));
        }
        // The password check is bounded server-wide (one per core); a busy answer (503,
        // Retry-After) is retried with the same form, as a browser user would.
        let mut tries = 0;
        let decision = loop {
            let mut request = self
                .client
                .post(format!("{}/authorize/decision", self.base))
                .form(&form);
            if !page.cookies.is_empty() {
                request = request.header(header::COOKIE, page.cookies.join("; "));
            }
            let decision = self.send("/authorize/decision", request).await?;
            tries += 1;
            if decision.status != 503 || tries == 50 {
                break decision;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let code = decision
            .location
            .as_deref()
            .filter(|_| decision.status == 303)
            .and_then(|location| Url::parse(location).ok())
            .and_then(|location| {
                location
                    .query_pairs()
                    .find(|(name, _)| name == "code")
                    .map(|(_, code)| code.into_owned())
            })
            .ok_or_else(|| decision.unexpected("/authorize/decision"))?;
        let (access, refresh) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
                ("redirect_uri", DEMO_REDIRECT_URI),
            ])
            .await?;
        let refresh = refresh.ok_or_else(|| {
            Failure::Unexpected("code exchange without a refresh token".to_owned())
        })?;
        Ok((access, refresh))
    }

    pub(super) async fn revoke(&self, token: &str) -> Result<(), Failure> {
        let reply = self.post("/revoke", &[("token", token)]).await?;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(reply.unexpected("/revoke"))
        }
    }
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) location: Option<String>,
    pub(super) cookies: Vec<String>,
    pub(super) body: String,
}

impl Reply {
    pub(super) fn unexpected(&self, what: &str) -> Failure {
        Failure::Unexpected(format!("{what}: {} {}", self.status, self.body))
    }
}
