//! What each load client knows: its grants (tokens received, rotated out, revoked) and the
//! random operations that produce them, recording only what was answered.

use super::*;

/// What one client knows about one grant (a code exchange or a client_credentials token).
pub(super) struct Grant {
    /// Access tokens received and not sent to /revoke.
    pub(super) access: Vec<String>,
    /// The current refresh token; `None` for client_credentials, or once a refresh of this
    /// grant was lost (the server may or may not have rotated it).
    pub(super) refresh: Option<String>,
    /// Refresh tokens rotated out: the refresh that replaced them was answered.
    pub(super) rotated: Vec<String>,
    pub(super) state: GrantState,
}

impl Grant {
    pub(super) fn new(access: String, refresh: Option<String>) -> Grant {
        Grant {
            access: vec![access],
            refresh,
            rotated: Vec::new(),
            state: GrantState::Live,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum GrantState {
    /// Nothing revoked it: its tokens must be active.
    Live,
    /// Revoked, acknowledged: by /revoke of its refresh token, or by reuse detection after a
    /// rotated-out refresh token was presented. Every token of it must be inactive.
    Revoked,
    /// A revocation of its refresh token was lost to a kill: not checked any more.
    Unknown,
}

/// What one load client (a token holder) knows; each grant is used by one holder only, so
/// no two requests race on it.
#[derive(Default)]
pub(super) struct Holder {
    pub(super) grants: Vec<Grant>,
    /// Access tokens whose revocation was acknowledged.
    pub(super) revoked_access: Vec<String>,
    pub(super) errors: Vec<String>,
    pub(super) acknowledged: usize,
}

impl Holder {
    pub(super) fn live(&self, rng: &mut StdRng, wanted: impl Fn(&Grant) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.grants.len())
            .filter(|&i| self.grants[i].state == GrantState::Live && wanted(&self.grants[i]))
            .collect();
        (!candidates.is_empty()).then(|| candidates[rng.random_range(0..candidates.len())])
    }

    /// One random operation; records only what was answered.
    pub(super) async fn step(&mut self, http: &Http, rng: &mut StdRng) -> Result<(), Failure> {
        let roll = rng.random_range(0..100u32);
        let refreshable = self.live(rng, |grant| grant.refresh.is_some());
        let with_access = self.live(rng, |grant| !grant.access.is_empty());
        match (roll, refreshable, with_access) {
            (0..15, _, _) => {
                let (access, _) = http.token(&[("grant_type", "client_credentials")]).await?;
                self.grants.push(Grant::new(access, None));
            }
            (35..70, Some(i), _) => {
                // Taken out first: if the answer is lost, the current token is unknown.
                let old = self.grants[i].refresh.take().expect("refreshable");
                let (access, new) = http
                    .token(&[("grant_type", "refresh_token"), ("refresh_token", &old)])
                    .await?;
                let new = new.ok_or_else(|| {
                    Failure::Unexpected("refresh without a new refresh token".to_owned())
                })?;
                let grant = &mut self.grants[i];
                grant.rotated.push(old);
                grant.refresh = Some(new);
                grant.access.push(access);
            }
            (70..85, _, Some(i)) => {
                let access = &mut self.grants[i].access;
                // Taken out first: if the answer is lost, the token is not checked again.
                let token = access.swap_remove(rng.random_range(0..access.len()));
                http.revoke(&token).await?;
                self.revoked_access.push(token);
            }
            (85.., Some(i), _) => {
                let token = self.grants[i].refresh.clone().expect("refreshable");
                self.grants[i].state = GrantState::Unknown;
                http.revoke(&token).await?;
                self.grants[i].state = GrantState::Revoked;
            }
            // 15..35, and whatever has nothing to work on yet: a new grant by the code flow.
            _ => {
                let (access, refresh) = http.code_flow().await?;
                self.grants.push(Grant::new(access, Some(refresh)));
            }
        }
        self.acknowledged += 1;
        Ok(())
    }
}

/// Runs `client` against the server until the kill begins; returns it with what it learnt.
pub(super) async fn load(mut client: Holder, http: Arc<Http>, mut rng: StdRng) -> Holder {
    while !http.killing.load(Ordering::SeqCst) {
        match client.step(&http, &mut rng).await {
            Ok(()) | Err(Failure::Lost) => {}
            Err(Failure::Unexpected(error)) => {
                client.errors.push(error);
                break;
            }
        }
    }
    client
}
