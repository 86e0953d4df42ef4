//! Getting the authorization code: `--headless` posts the login and consent form the way a
//! browser would; otherwise a loopback listener on the redirect URI (RFC 8252 §7.3) waits for
//! the browser. The callback is checked for `state` and `iss` (RFC 9207).

use reqwest::{header, Client, StatusCode};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use url::Url;

use crate::common::{at, BoxError, Discovery};
use crate::{html, short, CALLBACK_ADDR, CALLBACK_TIMEOUT, PASSWORD, REDIRECT_URI, USERNAME};

/// `--headless`: what a browser would do, done with plain HTTP. GET the authorization URL
/// (the login and consent page, which sets a CSRF cookie), then post the page's form with
/// the user's credentials and `action=approve`; the answer is a 303 to the redirect URI.
pub(crate) async fn headless_login(http: &Client, auth_url: &Url) -> Result<Url, BoxError> {
    println!("(--headless: signing in as {USERNAME} through the login form)");
    println!("GET {}", auth_url.path());
    let page = http.get(auth_url.clone()).send().await?;
    let status = page.status();
    let cookies: Vec<String> = page
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(|pair| pair.trim().to_owned())
        .collect();
    let html = page.text().await?;
    if status != StatusCode::OK {
        return Err(format!("the authorization request answered {status}: {html}").into());
    }
    let forms = html::find_tags(&html, "form");
    let form = forms.first().ok_or("the login page has no form")?;
    let action = auth_url.join(html::attr(form, "action").unwrap_or_default())?;
    let mut fields = html::hidden_inputs(&html);
    let csrf = fields
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.clone())
        .ok_or("the login form has no csrf field")?;
    println!("  <- 200, the login and consent page");
    for cookie in &cookies {
        let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
        println!(
            "  Set-Cookie: {name}={} (sent back with the form)",
            short(value)
        );
    }
    println!("  form action {action}, csrf field {}", short(&csrf));
    let carried: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    println!("  hidden fields: {}", carried.join(", "));
    fields.extend([
        ("username".to_owned(), USERNAME.to_owned()),
        ("password".to_owned(), PASSWORD.to_owned()),
        ("action".to_owned(), "approve".to_owned()),
    ]);
    println!(
        "POST {} (hidden fields + username, password, action=approve; Cookie)",
        action.path()
    );
    let reply = http
        .post(action)
        .header(header::COOKIE, cookies.join("; "))
        .form(&fields)
        .send()
        .await?;
    let status = reply.status();
    let location = reply
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    println!("  <- {status}");
    match location {
        Some(location) if status == StatusCode::SEE_OTHER => Ok(Url::parse(&location)?),
        _ => Err(format!(
            "the consent form answered {status}, expected a 303 to the redirect URI: {}",
            reply.text().await.unwrap_or_default()
        )
        .into()),
    }
}

/// Without `--headless`: listen on the redirect URI, ask the user to open the authorization
/// URL, and wait for the browser to come back with the code.
pub(crate) async fn browser_login(auth_url: &Url) -> Result<Url, BoxError> {
    let listener = tokio::net::TcpListener::bind(CALLBACK_ADDR).await.map_err(|e| {
        format!("cannot listen on {CALLBACK_ADDR}, the demo client's redirect URI ({e}); try --headless")
    })?;
    println!("Listening on {REDIRECT_URI}. Open this URL in a browser and sign in as");
    println!("{USERNAME} / {PASSWORD}:");
    println!();
    println!("  {auth_url}");
    println!();
    tokio::time::timeout(CALLBACK_TIMEOUT, accept_callback(&listener))
        .await
        .map_err(|_| format!("no callback within {} s", CALLBACK_TIMEOUT.as_secs()))?
}

/// Serves the loopback redirect URI until a request for its path arrives (RFC 8252 §7.3).
pub(crate) async fn accept_callback(listener: &tokio::net::TcpListener) -> Result<Url, BoxError> {
    let redirect = Url::parse(REDIRECT_URI)?;
    loop {
        let (mut socket, _) = listener.accept().await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        let head = String::from_utf8_lossy(&head);
        let target = head
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("GET "))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default();
        let url = redirect.join(target)?;
        if url.path() != redirect.path() {
            // The browser's favicon request and the like.
            socket
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await?;
            continue;
        }
        let page = "<!doctype html><title>oauth_client</title><p>Done: you can close this \
                    window and go back to the terminal.</p>";
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{page}",
            page.len()
        );
        socket.write_all(response.as_bytes()).await?;
        return Ok(url);
    }
}

/// Checks the authorization response (OAuth 2.1 §4.1.2, RFC 9207) and returns the code.
pub(crate) fn check_callback(
    callback: &Url,
    state: &str,
    found: &Discovery,
) -> Result<String, BoxError> {
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    if let Some(error) = param("error") {
        return Err(format!(
            "the authorization server refused: {error} {}",
            param("error_description").unwrap_or_default()
        )
        .into());
    }
    // CSRF protection of the redirect URI: the state we sent, exactly.
    if param("state").as_deref() != Some(state) {
        return Err(format!("state mismatch: sent {state}, got {:?}", param("state")).into());
    }
    println!("state matches what we sent");
    // RFC 9207 §2.4: a server that advertises iss must send it, and it must be the issuer
    // we discovered (mix-up defence).
    let advertised = *at(
        &found.metadata,
        "/authorization_response_iss_parameter_supported",
    ) == true;
    match param("iss") {
        Some(iss) if iss == found.issuer => {
            println!("iss = {iss}, the discovered issuer (RFC 9207)")
        }
        Some(iss) => {
            return Err(format!("iss {iss} is not the discovered issuer {}", found.issuer).into())
        }
        None if advertised => {
            return Err("the server advertises the iss parameter but sent none (RFC 9207)".into())
        }
        None => println!("no iss parameter (the server does not advertise RFC 9207)"),
    }
    let code = param("code").ok_or("the callback carries no code")?;
    println!("code = {}", short(&code));
    Ok(code)
}
