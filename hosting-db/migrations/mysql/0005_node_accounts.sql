-- The Unix accounts sites run as, one tenant's each: a name or uid names one account per node.
-- A node that still has accounts is not deleted (no cascade); a tenant's go with it.
CREATE TABLE node_accounts (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id  BIGINT NOT NULL,
    node_id    BIGINT NOT NULL,
    name       VARCHAR(32)    NOT NULL,
    uid        BIGINT NOT NULL,
    gid        BIGINT NOT NULL,
    origin     VARCHAR(16)    NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (node_id, name),
    UNIQUE (node_id, uid),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    FOREIGN KEY (node_id) REFERENCES nodes (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX node_accounts_tenant_id ON node_accounts (tenant_id, id);
CREATE INDEX node_accounts_node ON node_accounts (node_id, id);

-- Directives only the operator sets, kept apart from the tenant's extra_directives.
ALTER TABLE website_configs ADD COLUMN operator_directives MEDIUMTEXT NOT NULL DEFAULT ('[]');
