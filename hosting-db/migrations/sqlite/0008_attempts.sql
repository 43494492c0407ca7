-- Attempt budgets (passwords per account and per source, second-factor codes per user), one
-- row per key, keyed by the SHA-256 of the key so no e-mail or address is kept here. Every
-- panel process on the store spends the same budget; `version` makes each update a
-- compare-and-swap. A row past `expires_at` is forgotten and may be deleted.
CREATE TABLE attempt_budgets (
    key_hash      TEXT NOT NULL PRIMARY KEY,
    spent         INTEGER NOT NULL,
    blocked_until INTEGER,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    version       INTEGER NOT NULL
);
CREATE INDEX attempt_budgets_expiry ON attempt_budgets (expires_at);

-- Sources each user logged in from: a password from one of them is not slowed down by other
-- sources' failures on the account.
CREATE TABLE known_sources (
    user_id      INTEGER NOT NULL,
    source       TEXT NOT NULL,
    last_success INTEGER NOT NULL,
    PRIMARY KEY (user_id, source),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
