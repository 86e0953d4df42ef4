//! Browser sign-in sessions: a user who signed in with their password gets a cookie, so
//! later authorization requests from the same browser only ask for consent. Kept in the
//! registry's [`SharedState`](crate::storage::SharedState) under the cookie's digest
//! (never the cookie itself), so any process of the deployment resolves it (issue 14);
//! bounded in memory; ended when the user's password changes or the user is removed.

use actix::prelude::*;

use super::{ClientRegistry, RegistryError};
use crate::{
    domain::secrets::Digest,
    storage::shared_state::{Entry, Namespace},
};

/// Starts a browser sign-in session for a user who just signed in with their password,
/// so later authorization requests from the same browser only ask for consent. Answers the
/// cookie value (256 random bits; only its digest is kept).
#[derive(Debug, Message)]
#[rtype(result = "Result<String, RegistryError>")]
pub struct StartLoginSession {
    /// The signed-in user.
    pub subject: String,
}

/// Resolves a sign-in session cookie to its user, if the session is still valid.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<String>, RegistryError>")]
pub struct ResolveLoginSession {
    /// The cookie value.
    pub token: String,
}

impl ClientRegistry {
    /// Ends every browser sign-in session of `username`, on every process.
    pub(super) fn end_login_sessions_of(
        &self,
        username: &str,
    ) -> crate::storage::StoreFuture<usize> {
        self.shared.remove_owned_by(Namespace::SignIn, username)
    }
}

impl Handler<StartLoginSession> for ClientRegistry {
    type Result = ResponseFuture<Result<String, RegistryError>>;
    fn handle(&mut self, msg: StartLoginSession, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let token = crate::domain::secrets::random_token();
        let entry = Entry {
            value: msg.subject.clone().into_bytes(),
            owner: Some(msg.subject),
            expires_at: crate::domain::clock::expiry(now, self.settings.config.login_session_ttl),
        };
        let stored = self
            .shared
            .put(Namespace::SignIn, &Digest::of(token.as_bytes()), entry, now);
        Box::pin(async move {
            stored.await?;
            Ok(token)
        })
    }
}

impl Handler<ResolveLoginSession> for ClientRegistry {
    type Result = ResponseActFuture<Self, Result<Option<String>, RegistryError>>;
    fn handle(&mut self, msg: ResolveLoginSession, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let found = self
            .shared
            .get(Namespace::SignIn, &Digest::of(msg.token.as_bytes()), now);
        self.after_shared(found, |act, out| {
            let subject = match out.map(|e| e.and_then(|e| e.owner)) {
                Ok(Some(subject)) => subject,
                Ok(None) => return Box::pin(fut::ready(Ok(None))),
                Err(e) => return Box::pin(fut::ready(Err(e.into()))),
            };
            // A session for a user that has since been removed (here, on another instance
            // or by administration) is worthless: the user is looked up through the index.
            Box::pin(
                act.lookup_user(&subject)
                    .map(move |found, _, _| Ok(found?.is_some().then_some(subject))),
            )
        })
    }
}
