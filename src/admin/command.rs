//! The `oauth-mcp admin` command: reads a password from standard input when one is needed,
//! runs one operation through [`Admin`], and prints a human-readable report (errors go to
//! standard error, with a non-zero exit code).
//!
//! Passwords are never command-line arguments (those show in `ps` and shell history): on a
//! terminal they are prompted for twice with echo turned off, otherwise the first line of
//! standard input is the password (`printf '%s\n' "$PW" | oauth-mcp admin user add alice`).

use std::{
    io::{BufRead as _, IsTerminal as _, Write as _},
    process::{Command, ExitCode, Stdio},
    sync::Arc,
};

use super::{Admin, AdminError, ClientSpec, Revoked};
use crate::{
    actors::client_registry::RegisteredClient,
    cli::{AdminArgs, AdminCommand, ClientAddArgs, ClientCommand, RevokeArgs, UserCommand},
    clock::{Clock, SystemClock},
    domain::{
        client::{Client, ClientOrigin},
        grant::GrantHolder,
        secrets::Password,
    },
};

/// Runs `oauth-mcp admin ...` inside the current actix System; prints the report or the
/// error.
pub async fn run(args: AdminArgs) -> ExitCode {
    match execute(&args, Arc::new(SystemClock)).await {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is no failure of the operation, which is done.
            let _ = out.write_all(report.as_bytes()).and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oauth-mcp admin: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one administrative command and answers the report to print.
pub async fn execute(args: &AdminArgs, clock: Arc<dyn Clock>) -> Result<String, AdminError> {
    // Fail closed: with a database URL the operator means the PostgreSQL deployment, and
    // changing a sled directory instead would silently do nothing to it.
    if args.database_url.is_some() {
        return Err(AdminError::Invalid(
            "`oauth-mcp admin` does not work on PostgreSQL yet (--database-url or \
             OAUTH_MCP_DATABASE_URL is set): it manages a stopped server's sled data directory \
             only; unset the variable to administer one"
                .into(),
        ));
    }
    // Before the database is opened: a server cannot start while the operator types.
    let password = match &args.command {
        AdminCommand::User(UserCommand::Add { username })
        | AdminCommand::User(UserCommand::Passwd { username, .. }) => {
            Some(read_password(username)?)
        }
        _ => None,
    };
    let admin = Admin::open(args.config(), clock).await?;
    let report = apply(&admin, &args.command, password.as_ref()).await;
    let closed = admin.close().await;
    let report = report?;
    closed?;
    Ok(report)
}

async fn apply(
    admin: &Admin,
    command: &AdminCommand,
    password: Option<&Password>,
) -> Result<String, AdminError> {
    let password = || password.ok_or_else(|| AdminError::Internal("no password read".into()));
    Ok(match command {
        AdminCommand::Client(ClientCommand::Add(args)) => {
            added_client(&admin.add_client(&spec(args)).await?)
        }
        AdminCommand::Client(ClientCommand::List) => client_list(&admin.clients().await?),
        AdminCommand::Client(ClientCommand::Remove { client_id }) => {
            let revoked = admin.remove_client(client_id).await?;
            format!("Removed client {client_id}; {}\n", revocation(&revoked))
        }
        AdminCommand::User(UserCommand::Add { username }) => {
            admin.add_user(username, password()?).await?;
            format!("Added user {username}.\n")
        }
        AdminCommand::User(UserCommand::Passwd { username, revoke }) => {
            admin.set_password(username, password()?).await?;
            if *revoke {
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
        AdminCommand::User(UserCommand::Remove { username }) => {
            let revoked = admin.remove_user(username).await?;
            format!("Removed user {username}; {}\n", revocation(&revoked))
        }
        AdminCommand::User(UserCommand::List) => user_list(&admin.users().await?),
        AdminCommand::Revoke(RevokeArgs { user, client }) => {
            let (holder, what) = match (user, client) {
                (Some(user), _) => (GrantHolder::Subject(user.clone()), format!("user {user}")),
                (None, Some(client)) => (
                    GrantHolder::Client(client.clone()),
                    format!("client {client}"),
                ),
                (None, None) => {
                    return Err(AdminError::Invalid("name a --user or a --client".into()))
                }
            };
            let revoked = admin.revoke(holder).await?;
            format!("Grants of {what}: {}\n", revocation(&revoked))
        }
    })
}

fn spec(args: &ClientAddArgs) -> ClientSpec {
    ClientSpec {
        name: args.name.clone(),
        redirect_uris: args.redirect_uris.clone(),
        public: args.public,
        secret_post: args.secret_post,
        scopes: args.scopes.clone(),
        grant_types: args.grant_types.clone(),
    }
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

/// The new password: prompted for twice without echo on a terminal, else the first line
/// of standard input.
fn read_password(username: &str) -> Result<Password, AdminError> {
    let failed = |e: std::io::Error| AdminError::Internal(format!("cannot read the password: {e}"));
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(failed)?;
        return Ok(Password::new(without_newline(line)));
    }
    let first = prompt(&format!("Password for {username}: ")).map_err(failed)?;
    let second = prompt("Repeat it: ").map_err(failed)?;
    if first != second {
        return Err(AdminError::Invalid("the two passwords differ".into()));
    }
    Ok(Password::new(first))
}

fn without_newline(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// Asks on standard error and reads one line from the terminal with echo off.
fn prompt(text: &str) -> std::io::Result<String> {
    let echo_off = EchoOff::new();
    if !echo_off.0 {
        eprintln!("(cannot turn terminal echo off: the password will show as you type)");
    }
    eprint!("{text}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    drop(echo_off);
    eprintln!();
    read?;
    Ok(without_newline(line))
}

/// Terminal echo turned off with `stty` (no terminal library needed) for as long as this
/// lives; `.0` says whether it worked.
struct EchoOff(bool);

impl EchoOff {
    fn new() -> Self {
        Self(stty("-echo"))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if self.0 {
            stty("echo");
        }
    }
}

/// Runs `stty <arg>` on our terminal (its standard input).
fn stty(arg: &str) -> bool {
    Command::new("stty")
        .arg(arg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_line_ending_is_cut_from_a_piped_password() {
        assert_eq!(without_newline(" pw \n".into()), " pw ");
        assert_eq!(without_newline("pw\r\n".into()), "pw");
        assert_eq!(without_newline("pw".into()), "pw");
        assert_eq!(without_newline("\n".into()), "");
    }

    /// Nothing is opened: the data directory does not even exist.
    #[actix_web::test]
    async fn a_database_url_is_refused_before_anything_is_opened() {
        use clap::Parser as _;
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let argv = [
            "oauth-mcp",
            "admin",
            "--data-dir",
            missing.to_str().unwrap(),
            "--database-url",
            "postgres://app:s3cret@db/auth",
            "client",
            "list",
        ];
        let Some(crate::cli::Command::Admin(args)) =
            crate::cli::Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not admin");
        };
        let err = execute(&args, Arc::new(SystemClock)).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains("PostgreSQL"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(!missing.exists());
    }

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
}
