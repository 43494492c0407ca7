-- Per-login limits of a tenant's customer databases (a plan setting), as JSON; NULL means the
-- SDK's defaults.
ALTER TABLE tenants ADD COLUMN database_limits TEXT;
