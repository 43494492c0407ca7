//! `hostctl sites set ID key=value...`: edits of a site turned into the body of
//! `PATCH /websites/{id}`.
//!
//! The API's `settings` replaces the site's settings whole, so the edits are applied to the
//! settings the panel just returned and the result is sent back. Values are only given their
//! JSON type here; the panel checks them (a bad one is a 422 naming the field, exit code 2).

use serde_json::{Map, Value, json};

use super::failure::Failure;

/// The keys `sites set` takes, for help and errors.
pub const KEYS: &str = "  php.memory_limit=256M          php.max_execution_time=60 (seconds)
  php.upload_max_filesize=64M    php.post_max_size=64M
  php.extensions=intl,gd         (comma-separated; empty: none)
  gzip=on|off                    security_headers=on|off
  cache_ttl_secs=3600|off        www_redirect=none|to_www|to_apex
  allowed_ips=10.0.0.0/8,192.0.2.7   (empty: everyone)
  blocked_ips=198.51.100.0/24        (empty: nobody)
  ssl=disabled|letsencrypt|custom|selfsigned   ssl.auto_renew=on|off
  aliases=www.example.com,shop.example.com     (replaces the aliases)
  document_root=public                          (under the site's home)";

fn boolean(key: &str, value: &str) -> Result<bool, Failure> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(Failure::invalid_field(
            key,
            format!("{key}={value}: must be on or off"),
        )),
    }
}

fn number(key: &str, value: &str) -> Result<u64, Failure> {
    value
        .parse()
        .map_err(|_| Failure::invalid_field(key, format!("{key}={value}: must be a whole number")))
}

fn list(value: &str) -> Value {
    Value::Array(
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_owned()))
            .collect(),
    )
}

/// Sets `parent[key][name]`, making `parent[key]` an object when it is not one.
fn set_member(parent: &mut Map<String, Value>, key: &str, name: &str, value: Value) {
    let mut map = match parent.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    map.insert(name.to_owned(), value);
    parent.insert(key.to_owned(), Value::Object(map));
}

/// The `PATCH /websites/{id}` body for `edits` (`key=value`) on a site whose current settings
/// are `current`.
pub fn patch(current: &Value, edits: &[String]) -> Result<Value, Failure> {
    if edits.is_empty() {
        return Err(Failure::invalid(format!(
            "nothing to set: give key=value pairs:\n{KEYS}"
        )));
    }
    let mut settings = match current {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    // Shown with the site but the operator's alone to change (through its own endpoint); the
    // panel keeps them when the settings are replaced.
    settings.remove("operator_directives");
    let mut settings_changed = false;
    let mut body = Map::new();
    for edit in edits {
        let Some((key, value)) = edit.split_once('=') else {
            return Err(Failure::invalid(format!(
                "{edit}: expected key=value; the keys:\n{KEYS}"
            )));
        };
        let key = key.trim();
        let value = value.trim();
        let field = format!("settings.{key}");
        match key {
            "php.memory_limit" | "php.upload_max_filesize" | "php.post_max_size" => {
                let name = key.trim_start_matches("php.");
                set_member(&mut settings, "php", name, json!(value));
            }
            "php.max_execution_time" => {
                let secs = number(&field, value)?;
                set_member(&mut settings, "php", "max_execution_time", json!(secs));
            }
            "php.extensions" => {
                set_member(&mut settings, "php", "extensions", list(value));
            }
            "gzip" | "security_headers" => {
                settings.insert(key.to_owned(), json!(boolean(&field, value)?));
            }
            "cache_ttl_secs" => {
                let ttl = match value.to_ascii_lowercase().as_str() {
                    "off" | "none" | "" => Value::Null,
                    _ => json!(number(&field, value)?),
                };
                settings.insert(key.to_owned(), ttl);
            }
            "www_redirect" => {
                settings.insert(key.to_owned(), json!(value));
            }
            "allowed_ips" | "blocked_ips" => {
                settings.insert(key.to_owned(), list(value));
            }
            "ssl" => {
                let ssl = if value == "disabled" || value == "off" {
                    json!({"mode": "disabled"})
                } else {
                    let auto_renew = settings
                        .get("ssl")
                        .and_then(|s| s.get("auto_renew"))
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    json!({"mode": "enabled", "provider": value, "auto_renew": auto_renew})
                };
                settings.insert("ssl".to_owned(), ssl);
            }
            "ssl.auto_renew" => {
                let renew = boolean(&field, value)?;
                let mode = settings.get("ssl").and_then(|s| s.get("mode"));
                if mode.and_then(Value::as_str) != Some("enabled") {
                    return Err(Failure::invalid_field(
                        &field,
                        "ssl.auto_renew: HTTPS is disabled; set ssl=PROVIDER first",
                    ));
                }
                set_member(&mut settings, "ssl", "auto_renew", json!(renew));
            }
            "aliases" => {
                body.insert("aliases".to_owned(), list(value));
                continue;
            }
            "document_root" => {
                body.insert("document_root".to_owned(), json!(value));
                continue;
            }
            k if k == "database" || k.starts_with("database.") => {
                return Err(Failure::invalid_field(
                    &field,
                    "a site's database is chosen when the site is created and cannot change",
                ));
            }
            _ => {
                return Err(Failure::invalid_field(
                    &field,
                    format!("unknown setting {key:?}; the keys:\n{KEYS}"),
                ));
            }
        }
        settings_changed = true;
    }
    if settings_changed {
        body.insert("settings".to_owned(), Value::Object(settings));
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    fn current() -> Value {
        json!({
            "php": {"memory_limit": "128M", "max_execution_time": 30, "upload_max_filesize": "2M",
                    "post_max_size": "8M", "extensions": []},
            "database": {"engine": "mariadb", "name": "shop", "charset": "utf8mb4",
                         "collation": "utf8mb4_unicode_ci"},
            "ssl": {"mode": "disabled"},
            "gzip": false, "cache_ttl_secs": null, "security_headers": true,
            "allowed_ips": [], "blocked_ips": [], "www_redirect": "none", "extra_directives": []
        })
    }

    fn edits(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn edits_change_only_their_keys() {
        let body = patch(
            &current(),
            &edits(&[
                "php.memory_limit=256M",
                "php.max_execution_time=60",
                "gzip=on",
                "cache_ttl_secs=3600",
                "allowed_ips=10.0.0.0/8, 192.0.2.7",
                "www_redirect=to_www",
                "ssl=letsencrypt",
                "ssl.auto_renew=off",
            ]),
        )
        .expect("patch");
        let s = &body["settings"];
        assert_eq!(s["php"]["memory_limit"], "256M");
        assert_eq!(s["php"]["max_execution_time"], 60);
        assert_eq!(s["php"]["post_max_size"], "8M");
        assert_eq!(s["gzip"], true);
        assert_eq!(s["cache_ttl_secs"], 3600);
        assert_eq!(s["allowed_ips"], json!(["10.0.0.0/8", "192.0.2.7"]));
        assert_eq!(s["www_redirect"], "to_www");
        assert_eq!(
            s["ssl"],
            json!({"mode": "enabled", "provider": "letsencrypt", "auto_renew": false})
        );
        assert_eq!(
            s["database"],
            current()["database"],
            "the database stays as created"
        );
        assert!(body.get("aliases").is_none());
    }

    #[test]
    fn aliases_and_document_root_are_top_level() {
        let body = patch(
            &current(),
            &edits(&["aliases=www.a.example,", "document_root=web"]),
        )
        .expect("patch");
        assert_eq!(
            body,
            json!({"aliases": ["www.a.example"], "document_root": "web"})
        );
        let body = patch(&current(), &edits(&["aliases="])).expect("patch");
        assert_eq!(body, json!({"aliases": []}));
    }

    #[test]
    fn bad_edits_are_refused_with_their_field() {
        for (edit, field) in [
            ("gzip=maybe", "settings.gzip"),
            (
                "php.max_execution_time=soon",
                "settings.php.max_execution_time",
            ),
            ("nosuchkey=1", "settings.nosuchkey"),
            ("database.name=other", "settings.database.name"),
            ("ssl.auto_renew=on", "settings.ssl.auto_renew"),
        ] {
            let err = patch(&current(), &edits(&[edit])).expect_err(edit);
            assert_eq!(err.exit, 2, "{edit}");
            assert_eq!(err.document["error"]["field"], field, "{edit}");
        }
        assert_eq!(
            patch(&current(), &edits(&["gzip"]))
                .map_err(|f| f.exit)
                .err(),
            Some(2)
        );
        assert_eq!(patch(&current(), &[]).map_err(|f| f.exit).err(), Some(2));
    }
}
