-- The Unix accounts sites run as, one tenant's each: a name or uid names one account per node.
-- A node that still has accounts is not deleted (no cascade); a tenant's go with it.
CREATE TABLE node_accounts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    node_id    INTEGER NOT NULL REFERENCES nodes (id),
    name       TEXT    NOT NULL,
    uid        INTEGER NOT NULL,
    gid        INTEGER NOT NULL,
    origin     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (node_id, name),
    UNIQUE (node_id, uid)
);
CREATE INDEX node_accounts_tenant_id ON node_accounts (tenant_id, id);
CREATE INDEX node_accounts_node ON node_accounts (node_id, id);

-- Directives only the operator sets, kept apart from the tenant's extra_directives.
ALTER TABLE website_configs ADD COLUMN operator_directives TEXT NOT NULL DEFAULT '[]';
