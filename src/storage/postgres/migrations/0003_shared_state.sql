-- Schema 3 (expand: older builds run on it unchanged): short-lived state shared by every
-- instance (storage::SharedState, docs/storage.md "shared_state"): browser sign-in sessions,
-- the login throttle, the registration rate limit, repeat-registration fingerprints, and
-- later more of the kind, one namespace each. Keys are SHA-256 digests, never cookie values,
-- names or addresses. An entry has a value and an expiry; a counter has a count and the start
-- of its window, and expires when the window ends. Schema 1's sign_in_failures is unused
-- from this version on (a later contract step drops it).
CREATE TABLE shared_state (
    namespace    text NOT NULL,
    key          bytea NOT NULL CHECK (octet_length(key) = 32),
    value        bytea NOT NULL DEFAULT ''::bytea,
    owner        text,
    count        integer NOT NULL DEFAULT 0,
    window_start bigint NOT NULL DEFAULT 0,
    expires_at   bigint NOT NULL,
    PRIMARY KEY (namespace, key)
);
-- The sweep deletes expired entries in bounded batches, oldest first.
CREATE INDEX shared_state_expires_at ON shared_state (expires_at);
-- A user's sign-in sessions end together (password change, removal).
CREATE INDEX shared_state_owner ON shared_state (namespace, owner) WHERE owner IS NOT NULL;
