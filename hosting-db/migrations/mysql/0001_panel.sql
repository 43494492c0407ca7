-- The panel's records. Timestamps are Unix milliseconds; flags are 0/1 integers; lists are JSON
-- text. Every tenant-owned lookup has an index that starts with tenant_id.
CREATE TABLE tenants (
    id             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name           VARCHAR(200)    NOT NULL,
    slug           VARCHAR(63)    NOT NULL UNIQUE,
    status         VARCHAR(16)    NOT NULL,
    max_websites   BIGINT,
    max_databases  BIGINT,
    max_storage_mb BIGINT,
    created_at     BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE users (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id  BIGINT NOT NULL,
    role       VARCHAR(16)    NOT NULL,
    email      VARCHAR(254)    NOT NULL UNIQUE,
    status     VARCHAR(16)    NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    FOREIGN KEY (created_by) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX users_tenant_id ON users (tenant_id, id);
CREATE INDEX users_tenant_created_by ON users (tenant_id, created_by, id);

CREATE TABLE nodes (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(200)    NOT NULL UNIQUE,
    address    VARCHAR(300)    NOT NULL,
    roles      MEDIUMTEXT    NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE websites (
    id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id     BIGINT NOT NULL,
    owner_id      BIGINT NOT NULL,
    domain        VARCHAR(253)    NOT NULL UNIQUE,
    aliases       MEDIUMTEXT    NOT NULL,
    node_id       BIGINT NOT NULL,
    web_server    VARCHAR(32)    NOT NULL,
    php_version   VARCHAR(8),
    system_user   VARCHAR(32)    NOT NULL,
    document_root MEDIUMTEXT    NOT NULL,
    status        VARCHAR(16)    NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    FOREIGN KEY (owner_id) REFERENCES users (id),
    FOREIGN KEY (node_id) REFERENCES nodes (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX websites_tenant_id ON websites (tenant_id, id);
CREATE INDEX websites_tenant_owner ON websites (tenant_id, owner_id, id);
CREATE INDEX websites_node ON websites (node_id, id);

-- Every domain a site answers to, primary and aliases: the unique key makes a domain belong to
-- one site in the whole panel.
CREATE TABLE website_domains (
    domain     VARCHAR(253)    NOT NULL PRIMARY KEY,
    website_id BIGINT NOT NULL,
    tenant_id  BIGINT NOT NULL,
    FOREIGN KEY (website_id) REFERENCES websites (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX website_domains_website ON website_domains (website_id);
CREATE INDEX website_domains_tenant ON website_domains (tenant_id, domain);

CREATE TABLE website_configs (
    website_id             BIGINT NOT NULL PRIMARY KEY,
    php_memory_limit       BIGINT NOT NULL,
    php_max_execution_time BIGINT NOT NULL,
    php_upload_max_size    BIGINT NOT NULL,
    php_post_max_size      BIGINT NOT NULL,
    php_extensions         MEDIUMTEXT    NOT NULL,
    db_engine              VARCHAR(16),
    db_name                VARCHAR(64),
    db_charset             VARCHAR(64),
    db_collation           VARCHAR(64),
    ssl_enabled            BIGINT NOT NULL,
    ssl_provider           VARCHAR(16),
    ssl_auto_renew         BIGINT NOT NULL,
    gzip                   BIGINT NOT NULL,
    cache_ttl_secs         BIGINT,
    security_headers       BIGINT NOT NULL,
    allowed_ips            MEDIUMTEXT    NOT NULL,
    blocked_ips            MEDIUMTEXT    NOT NULL,
    FOREIGN KEY (website_id) REFERENCES websites (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE alert_rules (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id   BIGINT NOT NULL,
    name        VARCHAR(200)    NOT NULL,
    metric      VARCHAR(64)    NOT NULL,
    website_id  BIGINT,
    comparison  VARCHAR(16)    NOT NULL,
    threshold   DOUBLE    NOT NULL,
    for_secs    BIGINT NOT NULL,
    channels    MEDIUMTEXT    NOT NULL,
    enabled     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id),
    FOREIGN KEY (website_id) REFERENCES websites (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX alert_rules_tenant_id ON alert_rules (tenant_id, id);

-- Append-only; no foreign keys, so the log outlives what it describes.
CREATE TABLE audit_log (
    id        BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id BIGINT,
    actor_id  BIGINT,
    action    VARCHAR(128)    NOT NULL,
    target    MEDIUMTEXT    NOT NULL,
    outcome   VARCHAR(16)    NOT NULL,
    source_ip VARCHAR(64),
    detail    MEDIUMTEXT    NOT NULL,
    at        BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX audit_log_tenant_id ON audit_log (tenant_id, id);
