//! The saga journal (`website_operations`) and website failure reasons behind [`SqlStore`]'s
//! methods of [`PanelStore`](hosting_core::PanelStore) (`mod.rs` forwards to these).
//!
//! A journal row is written in its own transaction before each step of a website change, so
//! that a start after a crash finds every change that was in flight and what it had made.

use hosting_core::model::{
    NewOperation, Operation, OperationId, OperationState, SagaStep, WebsiteFailure, WebsiteId,
    WebsiteStatus,
};
use hosting_core::rbac::Caller;
use hosting_core::{Error, Page, PageRequest, Result};

use super::{Args, SqlStore, now_ms, rows, website_scope};

impl SqlStore {
    pub(super) async fn insert_operation(&self, new: NewOperation) -> Result<Operation> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let id = self
            .insert(
                &mut *tx,
                "INSERT INTO website_operations (tenant_id, user_id, node_id, website_id, kind, \
                 step, state, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                Args::default()
                    .int(new.tenant_id.0)
                    .int(new.user_id.0)
                    .int(new.node_id.0)
                    .opt_int(new.website_id.map(|w| w.0))
                    .text(new.kind.to_string())
                    .text(new.step.to_string())
                    .text(rows::to_json(&new.state)?)
                    .int(now)
                    .int(now),
                "website operation",
                String::new,
            )
            .await?;
        let operation = self.operation_in(&mut tx, OperationId(id)).await?;
        Self::commit(tx).await?;
        Ok(operation)
    }

    async fn operation_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: OperationId,
    ) -> Result<Operation> {
        let sql = format!(
            "SELECT {} FROM website_operations WHERE id = ?",
            rows::OPERATION_COLUMNS
        );
        let row = self
            .fetch_optional(&mut **tx, &sql, Args::default().int(id.0))
            .await?
            .ok_or_else(|| Error::not_found("website operation"))?;
        rows::operation(&row)
    }

    pub(super) async fn update_operation(
        &self,
        id: OperationId,
        website: Option<WebsiteId>,
        step: SagaStep,
        state: &OperationState,
    ) -> Result<()> {
        let changed = self
            .execute(
                &self.pool,
                "UPDATE website_operations SET website_id = ?, step = ?, state = ?, \
                 updated_at = ? WHERE id = ?",
                Args::default()
                    .opt_int(website.map(|w| w.0))
                    .text(step.to_string())
                    .text(rows::to_json(state)?)
                    .int(now_ms())
                    .int(id.0),
                "website operation",
                String::new,
            )
            .await?;
        if changed == 0 {
            return Err(Error::not_found("website operation"));
        }
        Ok(())
    }

    pub(super) async fn remove_operation(&self, id: OperationId) -> Result<()> {
        let removed = self
            .execute(
                &self.pool,
                "DELETE FROM website_operations WHERE id = ?",
                Args::default().int(id.0),
                "website operation",
                String::new,
            )
            .await?;
        if removed == 0 {
            return Err(Error::not_found("website operation"));
        }
        Ok(())
    }

    pub(super) async fn operations_page(&self, page: PageRequest) -> Result<Page<Operation>> {
        let sql = format!(
            "SELECT {} FROM website_operations WHERE 1 = 1",
            rows::OPERATION_COLUMNS
        );
        self.list_page(&sql, "id", Args::default(), page, rows::operation, |o| {
            o.id.0
        })
        .await
    }

    /// Sets status `failed` and the reason in one statement.
    pub(super) async fn set_failure(&self, id: WebsiteId, reason: &str) -> Result<()> {
        let changed = self
            .execute(
                &self.pool,
                "UPDATE websites SET status = ?, failure_reason = ?, updated_at = ? WHERE id = ?",
                Args::default()
                    .text(WebsiteStatus::Failed.to_string())
                    .text(reason)
                    .int(now_ms())
                    .int(id.0),
                "website",
                || format!("website {id}"),
            )
            .await?;
        if changed == 0 {
            return Err(Error::not_found("website"));
        }
        Ok(())
    }

    pub(super) async fn failures(
        &self,
        caller: &Caller,
        ids: &[WebsiteId],
    ) -> Result<Vec<WebsiteFailure>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = Args::default();
        for id in ids {
            args = args.int(id.0);
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let (scope, args) = website_scope(caller, args);
        let sql = format!(
            "SELECT w.id, w.failure_reason FROM websites w WHERE w.id IN ({marks}) \
             AND w.status = 'failed' AND w.failure_reason IS NOT NULL AND {scope} ORDER BY w.id"
        );
        self.fetch_all(&self.pool, &sql, args)
            .await?
            .iter()
            .map(rows::website_failure)
            .collect()
    }
}
