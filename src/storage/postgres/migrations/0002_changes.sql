-- Schema 2 (expand only: schema 1 builds keep running on it): the change feed
-- (docs/storage.md, "The change feed"). Every intent that can deactivate a credential or
-- change a principal (a grant or token revoked, a client or user written or removed) adds
-- one row to `changes` in its own transaction, numbered from `change_seq`, and notifies
-- channel `oauth_mcp_changes`; each instance reads the rows after the last one it applied.

-- One row. `UPDATE change_seq SET seq = seq + 1 RETURNING seq` takes its row lock until
-- COMMIT, so sequence numbers commit in order with no gaps: a reader that has seen `n`
-- has seen every change numbered below `n` (a sequence would not promise that).
CREATE TABLE change_seq (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL
);
INSERT INTO change_seq (one, seq) VALUES (true, 0);

-- kind: 'grant' (subject: grant id, hex), 'token' (an access token removed; subject
-- empty: the key is not needed), 'client' (client id), 'user' (username).
CREATE TABLE changes (
    seq     bigint PRIMARY KEY,
    kind    text NOT NULL CHECK (kind IN ('grant', 'token', 'client', 'user')),
    subject text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
-- Trimmed by age in the ledger's sweep.
CREATE INDEX changes_at ON changes (at);
