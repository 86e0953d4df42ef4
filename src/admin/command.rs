//! The `oauth-mcp admin` command: reads a password from standard input when one is needed,
//! runs one operation ([`Request`]) through [`Admin`] on the PostgreSQL database of
//! `--database-url` (live) or on a sled data directory no server holds, or, when a running
//! server holds that directory, sends it to the server's admin socket (Unix; says so on
//! standard error); then prints a human-readable report (errors go to standard error, with
//! a non-zero exit code).
//!
//! Passwords are never command-line arguments (those show in `ps` and shell history): on a
//! terminal they are prompted for twice with echo turned off, otherwise the first line of
//! standard input is the password (`printf '%s\n' "$PW" | oauth-mcp admin user add alice`).

use std::{
    io::{BufRead as _, IsTerminal as _, Write as _},
    process::{Command, ExitCode, Stdio},
    sync::Arc,
};

use super::{
    request::{apply, Request, WirePassword},
    transfer, Admin, AdminError, ClientSpec,
};
use crate::{
    cli::{AdminArgs, AdminCommand, ClientAddArgs, ClientCommand, RevokeArgs, UserCommand},
    clock::{Clock, SystemClock},
    domain::secrets::Password,
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
    match &args.command {
        AdminCommand::Export => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let counts = transfer::export(&args.config(), &mut out, clock.now()).await?;
            // Standard output holds the export only.
            eprintln!("oauth-mcp admin: exported {counts}");
            return Ok(String::new());
        }
        AdminCommand::Import => {
            let counts = transfer::import(&args.config(), std::io::stdin().lock()).await?;
            return Ok(format!(
                "Imported {counts} (records present already were kept).\n"
            ));
        }
        _ => {}
    }
    // Before the database is opened: a server cannot start while the operator types.
    let request = request_of(&args.command)?;
    let admin = match Admin::open(args.config(), clock).await {
        Ok(admin) => admin,
        // A running sled server holds the directory: go through it instead.
        #[cfg(unix)]
        Err(AdminError::InUse(dir)) => {
            eprintln!(
                "oauth-mcp admin: {} is in use by a running server; sending the command to it \
                 over {}",
                dir.display(),
                dir.join(super::socket::SOCKET_NAME).display()
            );
            return super::socket::send(&dir, &request).await;
        }
        Err(e) => return Err(e),
    };
    let report = apply(&admin, request).await;
    let closed = admin.close().await;
    let report = report?;
    closed?;
    Ok(report)
}

/// The operation `command` names; reads the password when one is needed.
fn request_of(command: &AdminCommand) -> Result<Request, AdminError> {
    Ok(match command {
        AdminCommand::Client(ClientCommand::Add(args)) => Request::AddClient { spec: spec(args) },
        AdminCommand::Client(ClientCommand::List) => Request::ListClients,
        AdminCommand::Client(ClientCommand::Remove { client_id }) => Request::RemoveClient {
            client_id: client_id.clone(),
        },
        AdminCommand::User(UserCommand::Add { username }) => Request::AddUser {
            username: username.clone(),
            password: WirePassword(read_password(username)?),
        },
        AdminCommand::User(UserCommand::Passwd { username, revoke }) => Request::SetPassword {
            username: username.clone(),
            password: WirePassword(read_password(username)?),
            revoke: *revoke,
        },
        AdminCommand::User(UserCommand::Remove { username }) => Request::RemoveUser {
            username: username.clone(),
        },
        AdminCommand::User(UserCommand::List) => Request::ListUsers,
        AdminCommand::Revoke(RevokeArgs { user, client }) => Request::Revoke {
            user: user.clone(),
            client: client.clone(),
        },
        AdminCommand::Export | AdminCommand::Import => {
            return Err(AdminError::Internal(
                "export and import are no request".into(),
            ))
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
}
