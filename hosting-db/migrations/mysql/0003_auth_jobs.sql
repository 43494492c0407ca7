-- Credentials, sessions, API tokens and background jobs. Timestamps are Unix milliseconds;
-- flags are 0/1 integers; lists are JSON text. Secrets are kept only as hashes (SHA-256 hex for
-- tokens and recovery codes, PHC strings for passwords); the TOTP secret is base32, because the
-- server computes codes from it.

-- One row per user that has a password, a second factor or failed logins; created on first use.
CREATE TABLE user_credentials (
    user_id        BIGINT NOT NULL PRIMARY KEY,
    password_hash  VARCHAR(512),
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT,
    totp_secret    VARCHAR(64),
    totp_confirmed BIGINT NOT NULL DEFAULT 0,
    totp_last_step BIGINT,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A code is consumed by deleting its row, so two uses of one code cannot both succeed.
CREATE TABLE recovery_codes (
    user_id   BIGINT NOT NULL,
    code_hash VARCHAR(64)    NOT NULL,
    PRIMARY KEY (user_id, code_hash),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE tenant_security (
    tenant_id    BIGINT NOT NULL PRIMARY KEY,
    requires_2fa BIGINT NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE sessions (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id  BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    source_ip  VARCHAR(64),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX sessions_tenant_user ON sessions (tenant_id, user_id, id);

-- Every refresh token a session ever had: a used one presented again reveals a copy.
CREATE TABLE refresh_tokens (
    hash       VARCHAR(64)    NOT NULL PRIMARY KEY,
    session_id BIGINT NOT NULL,
    used       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE api_tokens (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id   BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    hash        VARCHAR(64)    NOT NULL UNIQUE,
    name        VARCHAR(200)    NOT NULL,
    role        VARCHAR(16)    NOT NULL,
    permissions MEDIUMTEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX api_tokens_tenant_id ON api_tokens (tenant_id, id);
CREATE INDEX api_tokens_tenant_user ON api_tokens (tenant_id, user_id, id);

-- No foreign keys, like the audit log: a job's history outlives its tenant, user and node.
-- running_node is node_id while the job runs and NULL otherwise; its unique index is what
-- keeps two jobs of one node from running at once, whatever two workers race.
CREATE TABLE jobs (
    id           BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id    BIGINT,
    created_by   BIGINT,
    kind         MEDIUMTEXT    NOT NULL,
    node_id      BIGINT,
    running_node BIGINT UNIQUE,
    status       VARCHAR(16)    NOT NULL,
    attempts     BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    run_after    BIGINT NOT NULL,
    worker       VARCHAR(200),
    lease_token  VARCHAR(64),
    lease_until  BIGINT,
    progress     MEDIUMTEXT    NOT NULL,
    last_error   MEDIUMTEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX jobs_tenant_id ON jobs (tenant_id, id);
CREATE INDEX jobs_tenant_created_by ON jobs (tenant_id, created_by, id);
CREATE INDEX jobs_due ON jobs (status, run_after, id);
CREATE INDEX jobs_lease ON jobs (status, lease_until, id);
