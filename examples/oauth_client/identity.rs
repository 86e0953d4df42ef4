//! Who this program is to the server: the seeded demo client, or a public client identified
//! by a client ID metadata document (MCP 2025-11-25) that this program serves itself on a
//! loopback port.

use serde_json::json;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{indent, pretty, BoxError};
use crate::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI};

/// Who this program is to the server.
pub(crate) enum Identity {
    /// The seeded confidential demo client (`client_secret_basic`).
    Demo,
    /// A public client whose `client_id` is the URL of the metadata document it serves.
    Document { url: String },
}

impl Identity {
    pub(crate) fn client_id(&self) -> &str {
        match self {
            Self::Demo => CLIENT_ID,
            Self::Document { url } => url,
        }
    }

    pub(crate) fn secret(&self) -> Option<&str> {
        match self {
            Self::Demo => Some(CLIENT_SECRET),
            Self::Document { .. } => None,
        }
    }

    /// The client authentication used at the token and revocation endpoints.
    pub(crate) fn auth_method(&self) -> &'static str {
        match self {
            Self::Demo => "client_secret_basic",
            Self::Document { .. } => "none: client_id only",
        }
    }
}

/// Serves a client ID metadata document for this program on a loopback port, and returns
/// its URL, which is then the `client_id`. The document lists the callback as the only
/// redirect URI; the server fetches it when it first sees the `client_id`.
pub(crate) async fn serve_metadata_document() -> Result<Identity, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://127.0.0.1:{}/oauth-client.json",
        listener.local_addr()?.port()
    );
    let document = json!({
        "client_id": url,
        "client_name": "oauth_client example",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    println!("{}", indent(&pretty(&document)));
    let body = document.to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                // One read holds a GET's head; whatever it asked for gets the document.
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=300\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(Identity::Document { url })
}
