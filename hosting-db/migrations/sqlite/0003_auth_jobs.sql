-- Credentials, sessions, API tokens and background jobs. Timestamps are Unix milliseconds;
-- flags are 0/1 integers; lists are JSON text. Secrets are kept only as hashes (SHA-256 hex for
-- tokens and recovery codes, PHC strings for passwords); the TOTP secret is base32, because the
-- server computes codes from it.

-- One row per user that has a password, a second factor or failed logins; created on first use.
CREATE TABLE user_credentials (
    user_id        INTEGER NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    password_hash  TEXT,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   INTEGER,
    totp_secret    TEXT,
    totp_confirmed INTEGER NOT NULL DEFAULT 0,
    totp_last_step INTEGER
);

-- A code is consumed by deleting its row, so two uses of one code cannot both succeed.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT    NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE tenant_security (
    tenant_id    INTEGER NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    requires_2fa INTEGER NOT NULL
);

CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source_ip  TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_tenant_user ON sessions (tenant_id, user_id, id);

-- Every refresh token a session ever had: a used one presented again reveals a copy.
CREATE TABLE refresh_tokens (
    hash       TEXT    NOT NULL PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    used       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    permissions TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX api_tokens_tenant_id ON api_tokens (tenant_id, id);
CREATE INDEX api_tokens_tenant_user ON api_tokens (tenant_id, user_id, id);

-- No foreign keys, like the audit log: a job's history outlives its tenant, user and node.
-- running_node is node_id while the job runs and NULL otherwise; its unique index is what
-- keeps two jobs of one node from running at once, whatever two workers race.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    INTEGER,
    created_by   INTEGER,
    kind         TEXT    NOT NULL,
    node_id      INTEGER,
    running_node INTEGER UNIQUE,
    status       TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_after    INTEGER NOT NULL,
    worker       TEXT,
    lease_token  TEXT,
    lease_until  INTEGER,
    progress     TEXT    NOT NULL,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX jobs_tenant_id ON jobs (tenant_id, id);
CREATE INDEX jobs_tenant_created_by ON jobs (tenant_id, created_by, id);
CREATE INDEX jobs_due ON jobs (status, run_after, id);
CREATE INDEX jobs_lease ON jobs (status, lease_until, id);
