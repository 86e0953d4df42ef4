-- Schema 1: the tables of the three stores (docs/storage.md, "PostgreSQL").
-- Keys of tokens and codes are the digests the stores are given (TokenKey, 40 bytes: time
-- prefix then SHA-256 of the value), never the values themselves.

CREATE TABLE tokens (
    key           bytea PRIMARY KEY CHECK (octet_length(key) = 40),
    kind          text NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id      bytea NOT NULL CHECK (octet_length(grant_id) = 16),
    client_id     text NOT NULL,
    subject       text,
    scopes        text NOT NULL,
    resource      text NOT NULL,
    issued_at     bigint NOT NULL,
    expires_at    bigint NOT NULL,
    rotated_at_us bigint
);
-- The sweep deletes expired tokens in bounded batches; administration finds a holder's grants.
CREATE INDEX tokens_expires_at ON tokens (expires_at);
CREATE INDEX tokens_client_id ON tokens (client_id);
CREATE INDEX tokens_subject ON tokens (subject) WHERE subject IS NOT NULL;

CREATE TABLE revoked_grants (
    grant_id  bytea PRIMARY KEY CHECK (octet_length(grant_id) = 16),
    forget_at bigint NOT NULL
);
CREATE INDEX revoked_grants_forget_at ON revoked_grants (forget_at);

CREATE TABLE token_lifetimes (
    lifetime       bigint PRIMARY KEY,
    in_force_until bigint NOT NULL
);

-- A live code has used_at NULL; a redeemed one keeps its row, with used_at and forget_at set
-- (the marker that detects a replay until forget_at).
CREATE TABLE codes (
    key                   bytea PRIMARY KEY CHECK (octet_length(key) = 40),
    grant_id              bytea NOT NULL CHECK (octet_length(grant_id) = 16),
    client_id             text NOT NULL,
    redirect_uri          text NOT NULL,
    redirect_uri_explicit boolean NOT NULL,
    code_challenge        text NOT NULL,
    scopes                text NOT NULL,
    resource              text NOT NULL,
    subject               text NOT NULL,
    expires_at            bigint NOT NULL,
    used_at               bigint,
    forget_at             bigint,
    CHECK ((used_at IS NULL) = (forget_at IS NULL))
);
CREATE INDEX codes_live_expires_at ON codes (expires_at) WHERE used_at IS NULL;
CREATE INDEX codes_used_forget_at ON codes (forget_at) WHERE used_at IS NOT NULL;

CREATE TABLE clients (
    client_id     text PRIMARY KEY,
    secret_digest bytea CHECK (octet_length(secret_digest) = 32),
    auth_method   text NOT NULL,
    client_name   text,
    redirect_uris text[] NOT NULL,
    grant_types   text[] NOT NULL,
    scopes        text NOT NULL,
    issued_at     bigint NOT NULL,
    extra         jsonb NOT NULL,
    origin        text NOT NULL,
    used          boolean NOT NULL
);
CREATE INDEX clients_dynamic ON clients (origin) WHERE origin = 'dynamic';

CREATE TABLE users (
    username      text PRIMARY KEY,
    password_hash text NOT NULL
);

-- Sign-in failures per key (digest of a name or an address key), in fixed windows.
CREATE TABLE sign_in_failures (
    key          bytea PRIMARY KEY CHECK (octet_length(key) = 32),
    window_start bigint NOT NULL,
    failures     integer NOT NULL
);
