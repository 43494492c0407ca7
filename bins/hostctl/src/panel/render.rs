//! Tables for people from the panel's JSON. `--json` bypasses all of this and prints the
//! panel's answer as sent.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::table::table;

/// A column: its header and where its value is (a JSON pointer into a row).
pub type Column = (&'static str, &'static str);

/// A value as one cell: text as is, `null` and empty text as `-`, lists joined with `,`, times to the second.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => match s.parse::<DateTime<Utc>>() {
            Ok(t) if s.len() >= 20 && s.contains('T') => t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            _ => s.clone(),
        },
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(_) => value.to_string(),
    }
}

/// Rows of `items` under `columns`.
pub fn rows(items: &[Value], columns: &[Column]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, pointer)| item.pointer(pointer).map_or_else(|| "-".to_owned(), cell))
                .collect()
        })
        .collect()
}

/// A page of a list as a table, and (on stderr, so stdout stays the table) how to get the
/// next page.
pub fn list(page: &Value, columns: &[Column], what: &str) -> String {
    let items = page["items"].as_array().map_or(&[][..], Vec::as_slice);
    if let Some(next) = page["next_after"].as_i64() {
        eprintln!("more {what}: add --after {next} for the next page, or --all for every one");
    }
    if items.is_empty() {
        return format!("no {what}\n");
    }
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    table(&header, &rows(items, columns))
}

/// One record as `KEY  value` lines.
pub fn record(value: &Value, fields: &[Column]) -> String {
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|(name, pointer)| {
            vec![
                (*name).to_owned(),
                value.pointer(pointer).map_or_else(|| "-".to_owned(), cell),
            ]
        })
        .collect();
    table(&["FIELD", "VALUE"], &rows)
}

/// Every leaf of `value` as `prefix.key` lines (a site's settings).
pub fn flatten(prefix: &str, value: &Value, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => out.push(vec![prefix.to_owned(), cell(value)]),
    }
}

pub const TENANT: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("SLUG", "/slug"),
    ("STATUS", "/status"),
    ("MAX_SITES", "/quotas/max_websites"),
    ("MAX_DBS", "/quotas/max_databases"),
    ("CREATED", "/created_at"),
];

pub const USER: &[Column] = &[
    ("ID", "/id"),
    ("TENANT", "/tenant_id"),
    ("ROLE", "/role"),
    ("EMAIL", "/email"),
    ("STATUS", "/status"),
    ("CREATED_BY", "/created_by"),
    ("CREATED", "/created_at"),
];

pub const TOKEN: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("USER", "/user_id"),
    ("ROLE", "/role"),
    ("PERMISSIONS", "/permissions"),
    ("EXPIRES", "/expires_at"),
    ("REVOKED", "/revoked_at"),
];

pub const SITE: &[Column] = &[
    ("ID", "/id"),
    ("DOMAIN", "/domain"),
    ("NODE", "/node_id"),
    ("SERVER", "/web_server"),
    ("PHP", "/php_version"),
    ("USER", "/system_user"),
    ("STATUS", "/status"),
    ("OWNER", "/owner_id"),
];

pub const SITE_RECORD: &[Column] = &[
    ("id", "/id"),
    ("domain", "/domain"),
    ("aliases", "/aliases"),
    ("status", "/status"),
    ("tenant", "/tenant_id"),
    ("owner", "/owner_id"),
    ("node", "/node_id"),
    ("web_server", "/web_server"),
    ("php_version", "/php_version"),
    ("system_user", "/system_user"),
    ("document_root", "/document_root"),
    ("created", "/created_at"),
    ("updated", "/updated_at"),
];

pub const DATABASE: &[Column] = &[
    ("SITE", "/website_id"),
    ("DOMAIN", "/domain"),
    ("ENGINE", "/engine"),
    ("NAME", "/name"),
    ("USER", "/user"),
    ("HOST", "/host"),
    ("PORT", "/port"),
    ("CHARSET", "/charset"),
];

pub const CREDENTIALS: &[Column] = &[
    ("engine", "/engine"),
    ("host", "/host"),
    ("port", "/port"),
    ("database", "/database"),
    ("user", "/user"),
    ("password", "/password"),
];

pub const NODE: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("ADDRESS", "/address"),
    ("ROLES", "/roles"),
    ("CREATED", "/created_at"),
];

pub const PHP_VERSION: &[Column] = &[
    ("VERSION", "/version"),
    ("FULL_VERSION", "/full_version"),
    ("EXTENSIONS", "/extensions"),
];

pub const AUDIT: &[Column] = &[
    ("ID", "/id"),
    ("AT", "/at"),
    ("TENANT", "/tenant_id"),
    ("ACTOR", "/actor_id"),
    ("ACTION", "/action"),
    ("TARGET", "/target"),
    ("OUTCOME", "/outcome"),
    ("IP", "/source_ip"),
    ("DETAIL", "/detail"),
];

pub const JOB: &[Column] = &[
    ("ID", "/id"),
    ("KIND", "/kind/type"),
    ("NODE", "/kind/node"),
    ("STATUS", "/status"),
    ("ATTEMPTS", "/attempts"),
    ("PROGRESS", "/progress"),
    ("UPDATED", "/updated_at"),
];

pub const JOB_RECORD: &[Column] = &[
    ("id", "/id"),
    ("kind", "/kind/type"),
    ("node", "/kind/node"),
    ("status", "/status"),
    ("attempts", "/attempts"),
    ("max_attempts", "/max_attempts"),
    ("progress", "/progress"),
    ("last_error", "/last_error"),
    ("run_after", "/run_after"),
    ("tenant", "/tenant_id"),
    ("created_by", "/created_by"),
    ("created", "/created_at"),
    ("updated", "/updated_at"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_read_like_text() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(true)), "yes");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(
            cell(&json!("2026-03-01T12:34:56.789Z")),
            "2026-03-01 12:34:56Z"
        );
        assert_eq!(cell(&json!("8.2")), "8.2");
    }

    #[test]
    fn records_flatten_settings() {
        let mut out = Vec::new();
        flatten(
            "settings",
            &json!({"gzip": true, "php": {"memory_limit": "256M"}}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                vec!["settings.gzip".to_owned(), "yes".to_owned()],
                vec!["settings.php.memory_limit".to_owned(), "256M".to_owned()],
            ]
        );
    }
}
