-- Attempt budgets (passwords per account and per source, second-factor codes per user), one
-- row per key, keyed by the SHA-256 of the key so no e-mail or address is kept here. Every
-- panel process on the store spends the same budget; `version` makes each update a
-- compare-and-swap. A row past `expires_at` is forgotten and may be deleted.
CREATE TABLE attempt_budgets (
    key_hash      VARCHAR(64) NOT NULL PRIMARY KEY,
    spent         BIGINT NOT NULL,
    blocked_until BIGINT,
    updated_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    version       BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX attempt_budgets_expiry ON attempt_budgets (expires_at);

-- Sources each user logged in from: a password from one of them is not slowed down by other
-- sources' failures on the account.
CREATE TABLE known_sources (
    user_id      BIGINT NOT NULL,
    source       VARCHAR(45) NOT NULL,
    last_success BIGINT NOT NULL,
    PRIMARY KEY (user_id, source),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
