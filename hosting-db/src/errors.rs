//! Mapping sqlx errors to the SDK's portable error kinds, by sqlx's `ErrorKind` (never by
//! message text).

use hosting_core::Error;
use sqlx::error::ErrorKind;

/// Converts a sqlx error from `backend` into the SDK error. `entity` and `detail` describe
/// what a unique violation collided on.
pub(crate) fn map_sqlx(
    backend: &'static str,
    entity: &'static str,
    detail: impl FnOnce() -> String,
    err: sqlx::Error,
) -> Error {
    match &err {
        sqlx::Error::RowNotFound => Error::not_found(entity),
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => Error::AlreadyExists {
                entity,
                detail: detail(),
            },
            ErrorKind::ForeignKeyViolation => Error::Conflict(format!(
                "{entity} is referenced by, or references, a row that does not allow the change"
            )),
            // Serialization failure or deadlock: the change lost a race and can be retried.
            _ if matches!(db.code().as_deref(), Some("40001" | "40P01")) => Error::Conflict(
                format!("{entity} was changed concurrently; retry the request"),
            ),
            _ => Error::backend(backend, err),
        },
        _ => Error::backend(backend, err),
    }
}
