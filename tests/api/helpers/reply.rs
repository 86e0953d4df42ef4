//! A response read to the end (`Reply`), and small readers of what responses carry: cookies,
//! JSON string fields, scope strings, `aud`.

use std::collections::{BTreeSet, HashMap};

use reqwest::{
    header::{self, HeaderMap},
    Response,
};
use serde_json::Value;
use url::Url;

/// A response read to the end, so status, headers and body can all be asserted on.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn read(resp: Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.expect("read the response body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.body))
    }

    pub fn location(&self) -> Url {
        let location = self.header("location").unwrap_or_else(|| {
            panic!("no Location header (status {}): {}", self.status, self.body)
        });
        Url::parse(location).unwrap_or_else(|error| panic!("bad Location {location}: {error}"))
    }

    /// Query parameters of the `Location` header, decoded.
    pub fn location_query(&self) -> HashMap<String, String> {
        self.location().query_pairs().into_owned().collect()
    }
}

/// The `name=value` pair of every `Set-Cookie` header, as a browser would send them back.
pub fn cookie_pairs(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .map(|pair| pair.trim().to_owned())
        .collect()
}

/// A string field of a JSON object, or a panic naming what was missing.
pub fn str_field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {name:?} in {body}"))
        .to_owned()
}

/// Space-separated scope string as a set, so tests do not depend on scope order.
pub fn scope_set(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

/// `aud` may be a string or an array of strings (RFC 7662 §2.2).
pub fn aud_contains(aud: &Value, expected: &str) -> bool {
    match aud {
        Value::String(aud) => aud == expected,
        Value::Array(values) => values.iter().any(|value| value.as_str() == Some(expected)),
        _ => false,
    }
}
