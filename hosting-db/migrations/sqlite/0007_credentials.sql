-- Credentials that end at once (issue #20). Every access token carries its user's credential
-- generation; a password change, suspension, role change or refresh replay moves it, and the
-- panel refuses a token with an older one on the next request, in every panel process.
ALTER TABLE users ADD COLUMN credential_generation INTEGER NOT NULL DEFAULT 0;

-- Which credential acted: `session:12`, `api_token:7`; NULL for logins and the panel itself.
ALTER TABLE audit_log ADD COLUMN credential TEXT;
