//! Browser sign-in sessions: a user who signed in with their password gets a cookie, so
//! later authorization requests from the same browser only ask for consent. Kept in memory
//! (only the cookie's digest), bounded, and ended when the user's password changes or the
//! user is removed.

use actix::prelude::*;

use super::ClientRegistry;
use crate::domain::secrets::Digest;

/// Starts a browser sign-in session for a user who just signed in with their password,
/// so later authorization requests from the same browser only ask for consent. Answers the
/// cookie value (256 random bits; only its digest is kept).
#[derive(Debug, Message)]
#[rtype(result = "String")]
pub struct StartLoginSession {
    /// The signed-in user.
    pub subject: String,
}

/// Resolves a sign-in session cookie to its user, if the session is still valid.
#[derive(Debug, Message)]
#[rtype(result = "Option<String>")]
pub struct ResolveLoginSession {
    /// The cookie value.
    pub token: String,
}

/// Most browser sign-in sessions kept at once; the oldest are dropped beyond this.
const MAX_LOGIN_SESSIONS: usize = 100_000;

impl ClientRegistry {
    /// Forgets every browser sign-in session of `username`.
    pub(super) fn end_login_sessions_of(&mut self, username: &str) {
        self.login_sessions
            .retain(|_, (subject, _)| subject != username);
    }
}

impl Handler<StartLoginSession> for ClientRegistry {
    type Result = String;
    fn handle(&mut self, msg: StartLoginSession, _: &mut Self::Context) -> String {
        let now = self.clock.now();
        if self.login_sessions.len() >= MAX_LOGIN_SESSIONS {
            self.login_sessions.retain(|_, (_, exp)| *exp > now);
            if self.login_sessions.len() >= MAX_LOGIN_SESSIONS {
                // Still full of live sessions: drop the one closest to expiry.
                let oldest = self
                    .login_sessions
                    .iter()
                    .min_by_key(|(_, (_, exp))| *exp)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.login_sessions.remove(&k);
                }
            }
        }
        let token = crate::domain::secrets::random_token();
        let expires = crate::domain::clock::expiry(now, self.settings.config.login_session_ttl);
        self.login_sessions
            .insert(Digest::of(token.as_bytes()), (msg.subject, expires));
        token
    }
}

impl Handler<ResolveLoginSession> for ClientRegistry {
    type Result = Option<String>;
    fn handle(&mut self, msg: ResolveLoginSession, _: &mut Self::Context) -> Option<String> {
        let now = self.clock.now();
        let (subject, exp) = self.login_sessions.get(&Digest::of(msg.token.as_bytes()))?;
        // A session for a user that has since been removed is worthless.
        (*exp > now && self.users.contains_key(subject)).then(|| subject.clone())
    }
}
