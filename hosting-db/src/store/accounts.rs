//! The `node_accounts` statements behind [`SqlStore`]'s node-account methods of
//! [`PanelStore`](hosting_core::PanelStore) (a trait impl cannot be split across files, so
//! `mod.rs` forwards to these).
//!
//! A name, and a uid, naming one account per node is the table's two unique keys, not a check
//! before the insert: of concurrent records of one account exactly one wins, the others get
//! `AlreadyExists` from the error mapping.

use hosting_core::model::{NewNodeAccount, NodeAccount, NodeAccountId, NodeId, TenantId};
use hosting_core::types::SystemUser;
use hosting_core::{Error, Page, PageRequest, Result};

use super::{Args, SqlStore, now_ms, rows};

impl SqlStore {
    /// Records `new` after checking that its tenant and node exist, so an unknown one is
    /// `NotFound` rather than a foreign-key `Conflict`.
    pub(super) async fn insert_node_account(&self, new: NewNodeAccount) -> Result<NodeAccount> {
        let mut tx = self.begin().await?;
        for (sql, id, entity) in [
            (
                "SELECT id FROM tenants WHERE id = ?",
                new.tenant_id.0,
                "tenant",
            ),
            ("SELECT id FROM nodes WHERE id = ?", new.node_id.0, "node"),
        ] {
            if self
                .fetch_optional(&mut *tx, sql, Args::default().int(id))
                .await?
                .is_none()
            {
                return Err(Error::not_found(entity));
            }
        }
        let (name, uid, node) = (new.name.to_string(), new.uid, new.node_id);
        let id = self
            .insert(
                &mut *tx,
                "INSERT INTO node_accounts (tenant_id, node_id, name, uid, gid, origin, \
                 created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                Args::default()
                    .int(new.tenant_id.0)
                    .int(new.node_id.0)
                    .text(name.clone())
                    .int(i64::from(new.uid))
                    .int(i64::from(new.gid))
                    .text(new.origin.to_string())
                    .int(now_ms()),
                "node account",
                || format!("node {node} already has an account named {name} or with uid {uid}"),
            )
            .await?;
        let sql = format!(
            "SELECT {} FROM node_accounts WHERE id = ?",
            rows::NODE_ACCOUNT_COLUMNS
        );
        let row = self
            .fetch_optional(&mut *tx, &sql, Args::default().int(id))
            .await?
            .ok_or_else(|| Error::not_found("node account"))?;
        let account = rows::node_account(&row)?;
        Self::commit(tx).await?;
        Ok(account)
    }

    /// The account `name` on `node`; with `tenant`, only when that tenant owns it.
    pub(super) async fn node_account_named(
        &self,
        node: NodeId,
        name: &SystemUser,
        tenant: Option<TenantId>,
    ) -> Result<Option<NodeAccount>> {
        let args = Args::default().int(node.0).text(name.to_string());
        let (filter, args) = match tenant {
            Some(tenant) => (" AND tenant_id = ?", args.int(tenant.0)),
            None => ("", args),
        };
        let sql = format!(
            "SELECT {} FROM node_accounts WHERE node_id = ? AND name = ?{filter}",
            rows::NODE_ACCOUNT_COLUMNS
        );
        self.fetch_optional(&self.pool, &sql, args)
            .await?
            .map(|row| rows::node_account(&row))
            .transpose()
    }

    /// One keyset page of the accounts on `node`.
    pub(super) async fn node_accounts_page(
        &self,
        node: NodeId,
        page: PageRequest,
    ) -> Result<Page<NodeAccount>> {
        let sql = format!(
            "SELECT {} FROM node_accounts WHERE node_id = ?",
            rows::NODE_ACCOUNT_COLUMNS
        );
        self.list_page(
            &sql,
            "id",
            Args::default().int(node.0),
            page,
            rows::node_account,
            |a| a.id.0,
        )
        .await
    }

    /// Forgets the account `id`; `NotFound` when there is no such record.
    pub(super) async fn remove_node_account(&self, id: NodeAccountId) -> Result<()> {
        let removed = self
            .execute(
                &self.pool,
                "DELETE FROM node_accounts WHERE id = ?",
                Args::default().int(id.0),
                "node account",
                String::new,
            )
            .await?;
        if removed == 0 {
            return Err(Error::not_found("node account"));
        }
        Ok(())
    }
}
