//! One administrative operation as a value ([`Request`]), and what running it answers
//! ([`apply`]: the report printed for the operator). The command line builds a `Request`
//! and runs it on an [`Admin`] it opened itself, or sends it to a running server's admin
//! socket ([`super::socket`]), which runs it on an [`Admin`] attached to its own actors:
//! the same code either way, so the policy of an operation lives in one place.
//!
//! On the socket a request and its [`Answer`] are each one line of JSON; the request
//! carries the new password where one is needed (the socket is the operator's own, mode
//! 0600), and its `Debug` never shows it.

use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, ClientSpec, Revoked};
use crate::{
    actors::client_registry::RegisteredClient,
    domain::{
        client::{Client, ClientOrigin},
        grant::GrantHolder,
        secrets::Password,
    },
};

/// One administrative operation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// Register a client (`client add`).
    AddClient {
        /// The client.
        spec: ClientSpec,
    },
    /// List the clients (`client list`).
    ListClients,
    /// Remove a client and revoke its grants (`client remove`).
    RemoveClient {
        /// The client_id.
        client_id: String,
    },
    /// Add a user (`user add`).
    AddUser {
        /// The username.
        username: String,
        /// The password.
        password: WirePassword,
    },
    /// Change a user's password (`user passwd`).
    SetPassword {
        /// The username.
        username: String,
        /// The new password.
        password: WirePassword,
        /// Also revoke the user's grants.
        revoke: bool,
    },
    /// Remove a user and revoke their grants (`user remove`).
    RemoveUser {
        /// The username.
        username: String,
    },
    /// List the usernames (`user list`).
    ListUsers,
    /// Revoke every grant of a user or a client (`revoke`).
    Revoke {
        /// The user, or
        user: Option<String>,
        /// the client.
        client: Option<String>,
    },
}

/// A password as a request carries it: a string on the wire, [`Password`] (redacted
/// `Debug`) in memory.
#[derive(Clone)]
pub struct WirePassword(pub Password);

impl std::fmt::Debug for WirePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for WirePassword {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.secret())
    }
}

impl<'de> Deserialize<'de> for WirePassword {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Password::new(s)))
    }
}

/// What the admin socket answers to one request: the report, or why it failed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Answer {
    /// Done; the report for the operator.
    Done(String),
    /// Failed; the message for the operator.
    Failed(String),
}

/// Runs `request` on `admin` and answers the report to print.
pub async fn apply(admin: &Admin, request: Request) -> Result<String, AdminError> {
    Ok(match request {
        Request::AddClient { spec } => added_client(&admin.add_client(&spec).await?),
        Request::ListClients => client_list(&admin.clients().await?),
        Request::RemoveClient { client_id } => {
            let revoked = admin.remove_client(&client_id).await?;
            format!("Removed client {client_id}; {}\n", revocation(&revoked))
        }
        Request::AddUser { username, password } => {
            admin.add_user(&username, &password.0).await?;
            format!("Added user {username}.\n")
        }
        Request::SetPassword {
            username,
            password,
            revoke,
        } => {
            admin.set_password(&username, &password.0).await?;
            if revoke {
                let revoked = admin.revoke(GrantHolder::Subject(username.clone())).await?;
                format!(
                    "Changed the password of {username}; {}\n",
                    revocation(&revoked)
                )
            } else {
                format!(
                    "Changed the password of {username}. Tokens issued before stay valid; \
                     `oauth-mcp admin revoke --user {username}` ends them.\n"
                )
            }
        }
        Request::RemoveUser { username } => {
            let revoked = admin.remove_user(&username).await?;
            format!("Removed user {username}; {}\n", revocation(&revoked))
        }
        Request::ListUsers => user_list(&admin.users().await?),
        Request::Revoke { user, client } => {
            let (holder, what) = match (user, client) {
                (Some(user), None) => (GrantHolder::Subject(user.clone()), format!("user {user}")),
                (None, Some(client)) => (
                    GrantHolder::Client(client.clone()),
                    format!("client {client}"),
                ),
                _ => {
                    return Err(AdminError::Invalid(
                        "name one --user or one --client".into(),
                    ))
                }
            };
            let revoked = admin.revoke(holder).await?;
            format!("Grants of {what}: {}\n", revocation(&revoked))
        }
    })
}

/// "1 grant", "2 grants".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "revoked 2 grants: ...", for the end of a report line.
fn revocation(revoked: &Revoked) -> String {
    let mut line = if revoked.grants == 0 {
        "no grant had a token that could still be used.".to_owned()
    } else {
        format!(
            "revoked {}: their access and refresh tokens no longer validate.",
            count(revoked.grants, "grant")
        )
    };
    if revoked.codes > 0 {
        line.push_str(&format!(
            " Discarded {} not yet exchanged.",
            count(revoked.codes, "authorization code")
        ));
    }
    line
}

fn added_client(registered: &RegisteredClient) -> String {
    let c = &registered.client;
    let kind = if c.is_confidential() {
        "confidential"
    } else {
        "public"
    };
    let mut lines = vec![format!("Added {kind} client{}.", quoted_name(c))];
    lines.push(format!("  client_id:     {}", c.client_id));
    match &registered.secret {
        Some(secret) => {
            lines.push(format!("  client_secret: {}", secret.secret()));
            lines.push(
                "  Store the secret now: it is shown this once and will not be shown again \
                 (only its digest is kept)."
                    .into(),
            );
        }
        None => lines.push("  (no secret: a public client proves itself with PKCE)".into()),
    }
    lines.extend(details(c));
    lines.join("\n") + "\n"
}

fn quoted_name(c: &Client) -> String {
    c.client_name
        .as_ref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default()
}

/// The lines every client listing shows, secrets aside (only digests are stored).
fn details(c: &Client) -> Vec<String> {
    let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
    let registered = chrono::DateTime::from_timestamp(c.issued_at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| c.issued_at.to_string());
    // Dynamically registered clients never used are removed after `--unused-client-ttl`.
    let origin = match (c.origin, c.used) {
        (ClientOrigin::Operator, _) => "operator",
        (ClientOrigin::Dynamic, true) => "dynamic registration",
        (ClientOrigin::Dynamic, false) => "dynamic registration, no token issued yet",
        (ClientOrigin::Document, _) => "client metadata document",
    };
    vec![
        format!("  added by:      {origin}"),
        format!("  auth method:   {}", c.auth_method.as_str()),
        format!("  redirect URIs: {}", c.redirect_uris.join(" ")),
        format!("  grant types:   {}", grants.join(" ")),
        format!("  scopes:        {}", c.scopes),
        format!("  registered:    {registered}"),
    ]
}

fn client_list(clients: &[Client]) -> String {
    let mut lines = Vec::new();
    for c in clients {
        let kind = if c.is_confidential() {
            "confidential"
        } else {
            "public"
        };
        lines.push(format!("{}  {kind}{}", c.client_id, quoted_name(c)));
        lines.extend(details(c));
    }
    lines.push(count(clients.len(), "client"));
    lines.join("\n") + "\n"
}

fn user_list(users: &[String]) -> String {
    let mut lines = users.to_vec();
    lines.push(count(users.len(), "user"));
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_reports_grants_and_codes() {
        let none = revocation(&Revoked::default());
        assert!(none.starts_with("no grant"), "{none}");
        let some = revocation(&Revoked {
            grants: 1,
            codes: 2,
        });
        assert!(
            some.starts_with("revoked 1 grant:") && some.contains("2 authorization codes"),
            "{some}"
        );
    }

    #[test]
    fn a_request_is_one_json_line_whose_debug_hides_the_password() {
        let request = Request::SetPassword {
            username: "alice".into(),
            password: WirePassword(Password::new("s3cret pw".into())),
            revoke: true,
        };
        assert!(!format!("{request:?}").contains("s3cret"));
        let line = serde_json::to_string(&request).unwrap();
        assert!(!line.contains('\n'));
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, Request::SetPassword { revoke: true, .. }));
        let unknown = serde_json::from_str::<Request>(r#"{"op":"drop_everything"}"#);
        assert!(unknown.is_err());
        let extra = r#"{"op":"remove_user","username":"a","x":1}"#;
        assert!(serde_json::from_str::<Request>(extra).is_err());
    }
}
