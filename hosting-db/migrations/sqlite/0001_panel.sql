-- The panel's records. Timestamps are Unix milliseconds; flags are 0/1 integers; lists are JSON
-- text. Every tenant-owned lookup has an index that starts with tenant_id.
CREATE TABLE tenants (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL,
    slug           TEXT    NOT NULL UNIQUE,
    status         TEXT    NOT NULL,
    max_websites   INTEGER,
    max_databases  INTEGER,
    max_storage_mb INTEGER,
    created_at     INTEGER NOT NULL
);

CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    role       TEXT    NOT NULL,
    email      TEXT    NOT NULL UNIQUE,
    status     TEXT    NOT NULL,
    created_by INTEGER REFERENCES users (id),
    created_at INTEGER NOT NULL
);
CREATE INDEX users_tenant_id ON users (tenant_id, id);
CREATE INDEX users_tenant_created_by ON users (tenant_id, created_by, id);

CREATE TABLE nodes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    address    TEXT    NOT NULL,
    roles      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE websites (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    owner_id      INTEGER NOT NULL REFERENCES users (id),
    domain        TEXT    NOT NULL UNIQUE,
    aliases       TEXT    NOT NULL,
    node_id       INTEGER NOT NULL REFERENCES nodes (id),
    web_server    TEXT    NOT NULL,
    php_version   TEXT,
    system_user   TEXT    NOT NULL,
    document_root TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX websites_tenant_id ON websites (tenant_id, id);
CREATE INDEX websites_tenant_owner ON websites (tenant_id, owner_id, id);
CREATE INDEX websites_node ON websites (node_id, id);

-- Every domain a site answers to, primary and aliases: the unique key makes a domain belong to
-- one site in the whole panel.
CREATE TABLE website_domains (
    domain     TEXT    NOT NULL PRIMARY KEY,
    website_id INTEGER NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    tenant_id  INTEGER NOT NULL
);
CREATE INDEX website_domains_website ON website_domains (website_id);
CREATE INDEX website_domains_tenant ON website_domains (tenant_id, domain);

CREATE TABLE website_configs (
    website_id             INTEGER NOT NULL PRIMARY KEY REFERENCES websites (id) ON DELETE CASCADE,
    php_memory_limit       INTEGER NOT NULL,
    php_max_execution_time INTEGER NOT NULL,
    php_upload_max_size    INTEGER NOT NULL,
    php_post_max_size      INTEGER NOT NULL,
    php_extensions         TEXT    NOT NULL,
    db_engine              TEXT,
    db_name                TEXT,
    db_charset             TEXT,
    db_collation           TEXT,
    ssl_enabled            INTEGER NOT NULL,
    ssl_provider           TEXT,
    ssl_auto_renew         INTEGER NOT NULL,
    gzip                   INTEGER NOT NULL,
    cache_ttl_secs         INTEGER,
    security_headers       INTEGER NOT NULL,
    allowed_ips            TEXT    NOT NULL,
    blocked_ips            TEXT    NOT NULL
);

CREATE TABLE alert_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    name        TEXT    NOT NULL,
    metric      TEXT    NOT NULL,
    website_id  INTEGER REFERENCES websites (id) ON DELETE CASCADE,
    comparison  TEXT    NOT NULL,
    threshold   REAL    NOT NULL,
    for_secs    INTEGER NOT NULL,
    channels    TEXT    NOT NULL,
    enabled     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX alert_rules_tenant_id ON alert_rules (tenant_id, id);

-- Append-only; no foreign keys, so the log outlives what it describes.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER,
    actor_id  INTEGER,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    source_ip TEXT,
    detail    TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX audit_log_tenant_id ON audit_log (tenant_id, id);
