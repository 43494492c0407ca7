//! The HTTP client of the panel's REST API: which panel and which token (flag, environment,
//! config file), the refresh of an expired login, and error answers turned into [`Failure`]s.

use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::config::{self, ConfigFile};
use super::failure::Failure;

/// The variable that names the panel.
pub const URL_VAR: &str = "HOSTCTL_URL";
/// The variable that holds a bearer token (an API token).
pub const TOKEN_VAR: &str = "HOSTCTL_TOKEN";

/// How hostctl finds the panel and proves who it is: `--url` and `--token`, else the
/// environment, else the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Connection {
    /// The panel's URL (`https://panel.example.com`); else $HOSTCTL_URL, else the config
    /// file's (panel commands).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// A bearer token used as is, e.g. an API token (`hsk_...`); else $HOSTCTL_TOKEN, else the
    /// login in the config file. Other users can see arguments: prefer $HOSTCTL_TOKEN.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// One answer of the panel that was a success.
#[derive(Debug)]
pub struct Answer {
    /// The body as JSON (`null` when empty, as for 204).
    pub body: Value,
    /// The body as sent, for `--json`.
    pub text: String,
}

/// The bearer token and where it came from.
enum Auth {
    /// No token: only the public endpoints (login) answer.
    None,
    /// From `--token` or `$HOSTCTL_TOKEN`: used as is, never refreshed or stored.
    Given(String),
    /// The config file's login: refreshed when the panel refuses it, and written back.
    Login {
        path: PathBuf,
        access: String,
        refresh: Option<String>,
    },
}

/// A client of one panel.
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `url` without a trailing `/` or `/api/v1`, checked to be an `http(s)` URL without
/// credentials, query or fragment. An embedder may mount the API under a prefix
/// (`https://example.com/panel`), which is kept.
pub fn normalize_url(url: &str) -> Result<String, Failure> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| Failure::invalid_field("url", format!("--url {url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Failure::invalid_field(
            "url",
            format!("--url {url}: must start with https:// or http://"),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Failure::invalid_field(
            "url",
            "--url: must not hold credentials; log in with `hostctl login` or pass --token",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Failure::invalid_field(
            "url",
            format!("--url {url}: must not have a query or fragment"),
        ));
    }
    let text = parsed.as_str().trim_end_matches('/');
    let text = text.strip_suffix("/api/v1").unwrap_or(text);
    Ok(text.trim_end_matches('/').to_owned())
}

/// Whether `url` sends secrets in clear text over a network (not to this machine).
fn clear_text_remote(url: &str) -> bool {
    let Ok(parsed) = Url::parse(url) else {
        return false;
    };
    if parsed.scheme() != "http" {
        return false;
    }
    match parsed.host_str() {
        Some("localhost") | None => false,
        Some(host) => !host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
    }
}

/// The panel's URL from the flag, the environment or the config file.
pub fn resolve_url(connection: &Connection, file: &ConfigFile) -> Result<String, Failure> {
    let url = connection
        .url
        .clone()
        .or_else(|| env(URL_VAR))
        .or_else(|| file.url.clone())
        .ok_or_else(|| {
            Failure::invalid_field(
                "url",
                format!(
                    "which panel? pass --url, set {URL_VAR}, or run `hostctl login --url URL \
                     --email EMAIL`"
                ),
            )
        })?;
    let url = normalize_url(&url)?;
    if clear_text_remote(&url) {
        eprintln!(
            "warning: {url} is plain HTTP: passwords and tokens cross the network unencrypted"
        );
    }
    Ok(url)
}

/// The answer's `Retry-After`, in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Client {
    /// A client of the panel the flags, the environment or the config file name, with the
    /// token they give. The config file's login is used only for the URL it was made at:
    /// tokens never go to another panel.
    pub fn connect(connection: &Connection) -> Result<Self, Failure> {
        let path = config::path();
        let file = match &path {
            Ok(p) => config::load(p)?,
            Err(_) => ConfigFile::default(),
        };
        let base = resolve_url(connection, &file)?;
        let given = connection.token.clone().or_else(|| env(TOKEN_VAR));
        let same_panel = file
            .url
            .as_deref()
            .and_then(|u| normalize_url(u).ok())
            .is_some_and(|u| u == base);
        let auth = match (given, path, file.access_token) {
            (Some(token), _, _) => Auth::Given(token),
            (None, Ok(path), Some(access)) if same_panel => Auth::Login {
                path,
                access,
                refresh: file.refresh_token,
            },
            _ => Auth::None,
        };
        Ok(Self {
            http: http_client()?,
            base,
            auth,
        })
    }

    /// A client of `base` without a token (for `login`).
    pub fn anonymous(base: String) -> Result<Self, Failure> {
        Ok(Self {
            http: http_client()?,
            base,
            auth: Auth::None,
        })
    }

    /// The panel's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether the token is the config file's login (which `logout` ends).
    pub fn is_login(&self) -> bool {
        matches!(self.auth, Auth::Login { .. })
    }

    /// Whether a token was given by flag or environment.
    pub fn is_given(&self) -> bool {
        matches!(self.auth, Auth::Given(_))
    }

    fn bearer(&self) -> Option<&str> {
        match &self.auth {
            Auth::None => None,
            Auth::Given(t) => Some(t),
            Auth::Login { access, .. } => Some(access),
        }
    }

    /// Sends one request and reads the whole answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<(StatusCode, Option<u64>, String), Failure> {
        let mut url = Url::parse(&format!("{}/api/v1{path}", self.base))
            .map_err(|e| Failure::invalid(format!("{}/api/v1{path}: {e}", self.base)))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        let mut request = self.http.request(method, url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            Failure::network(format!(
                "cannot reach the panel at {}: {}",
                self.base,
                chain(&e)
            ))
        })?;
        let status = response.status();
        let retry = retry_after(response.headers());
        let text = response.text().await.map_err(|e| {
            Failure::network(format!(
                "the panel at {} broke off its answer: {}",
                self.base,
                chain(&e)
            ))
        })?;
        Ok((status, retry, text))
    }

    /// Calls the API (`path` under `/api/v1`). A login whose access token the panel refuses
    /// is refreshed once and the request sent again: a 401 comes from the authentication
    /// layer, before any handler ran, so sending it again cannot do anything twice.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, Failure> {
        let mut sent = self
            .send(method.clone(), path, query, body, self.bearer())
            .await?;
        if sent.0 == StatusCode::UNAUTHORIZED && self.is_login() {
            self.refresh().await?;
            sent = self.send(method, path, query, body, self.bearer()).await?;
        }
        let (status, retry, text) = sent;
        let parsed: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(_) if !status.is_success() => Value::Null,
                Err(e) => {
                    return Err(Failure::network(format!(
                        "the panel at {} answered {status} with a body that is not JSON: {e}",
                        self.base
                    )));
                }
            }
        };
        if status.is_success() {
            return Ok(Answer { body: parsed, text });
        }
        let mut failure = Failure::api(status.as_u16(), parsed, &text, retry);
        // A refused login is about its password or code, not about being logged in.
        if status == StatusCode::UNAUTHORIZED && path != "/auth/login" {
            let hint = match &self.auth {
                Auth::None => " (not logged in: run `hostctl login`, or pass --token)",
                Auth::Given(_) => " (the token given by --token or $HOSTCTL_TOKEN)",
                Auth::Login { .. } => " (run `hostctl login` again)",
            };
            failure.message.push_str(hint);
        }
        Err(failure)
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<Answer, Failure> {
        self.call(Method::GET, path, &[], None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&mut self, path: &str, body: Option<&Value>) -> Result<Answer, Failure> {
        self.call(Method::POST, path, &[], body).await
    }

    /// Exchanges the login's refresh token for new tokens and writes them to the config
    /// file, under its lock: another hostctl may have refreshed first, and presenting the
    /// used refresh token again would end the session.
    async fn refresh(&mut self) -> Result<(), Failure> {
        let Auth::Login {
            path,
            access,
            refresh,
        } = &self.auth
        else {
            return Ok(());
        };
        let path = path.clone();
        let _lock = config::lock(&path)?;
        let mut file = config::load(&path)?;
        if let Some(newer) = file.access_token.clone()
            && newer != *access
        {
            // Another hostctl refreshed (or logged in) meanwhile: use its tokens.
            self.auth = Auth::Login {
                path,
                access: newer,
                refresh: file.refresh_token,
            };
            return Ok(());
        }
        let Some(refresh) = refresh.clone() else {
            return Err(Failure::not_logged_in(format!(
                "the panel at {} refused the access token and there is no refresh token in \
                 {}: run `hostctl login`",
                self.base,
                path.display()
            )));
        };
        let body = json!({ "refresh_token": refresh });
        let (status, retry, text) = self
            .send(Method::POST, "/auth/refresh", &[], Some(&body), None)
            .await?;
        if status == StatusCode::UNAUTHORIZED {
            file.forget_tokens();
            config::save(&path, &file)?;
            return Err(Failure::not_logged_in(format!(
                "the login session at {} has ended (expired, logged out or revoked): run \
                 `hostctl login`",
                self.base
            )));
        }
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(Failure::api(status.as_u16(), parsed, &text, retry));
        }
        let tokens = Tokens::from_answer(&parsed).ok_or_else(|| {
            Failure::network(format!(
                "the panel at {} answered the refresh without tokens",
                self.base
            ))
        })?;
        tokens.store(&mut file);
        config::save(&path, &file)?;
        self.auth = Auth::Login {
            path,
            access: tokens.access,
            refresh: Some(tokens.refresh),
        };
        Ok(())
    }

    /// One page of a list, or with `all` every page (following `next_after`), as one
    /// `{"items": [...], "next_after": null}` document.
    pub async fn list(&mut self, path: &str, paging: &Paging) -> Result<Answer, Failure> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(limit) = paging.limit {
            query.push(("limit", limit.to_string()));
        }
        let mut after = paging.after;
        if !paging.all {
            if let Some(a) = after {
                query.push(("after", a.to_string()));
            }
            return self.call(Method::GET, path, &query, None).await;
        }
        let mut items: Vec<Value> = Vec::new();
        loop {
            let mut q = query.clone();
            if let Some(a) = after {
                q.push(("after", a.to_string()));
            }
            let page = self.call(Method::GET, path, &q, None).await?;
            if let Some(rows) = page.body["items"].as_array() {
                items.extend(rows.iter().cloned());
            }
            match page.body["next_after"].as_i64() {
                Some(next) if Some(next) != after => after = Some(next),
                _ => break,
            }
        }
        let body = json!({ "items": items, "next_after": null });
        Ok(Answer {
            text: body.to_string(),
            body,
        })
    }
}

/// Paging of a list.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Paging {
    /// Rows per page, 1 to 500 (the panel's default: 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: Option<u32>,
    /// Start after this id (the `next_after` of the previous page).
    #[arg(long, value_name = "ID", conflicts_with = "all")]
    pub after: Option<i64>,
    /// Every page, following `next_after` to the end.
    #[arg(long)]
    pub all: bool,
}

/// The tokens of a login or refresh answer.
pub struct Tokens {
    access: String,
    refresh: String,
    access_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    refresh_expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Tokens {
    /// The tokens of `answer`, when it has both.
    pub fn from_answer(answer: &Value) -> Option<Self> {
        let time = |key: &str| answer[key].as_str().and_then(|s| s.parse().ok());
        Some(Self {
            access: answer["access_token"].as_str()?.to_owned(),
            refresh: answer["refresh_token"].as_str()?.to_owned(),
            access_expires_at: time("access_expires_at"),
            refresh_expires_at: time("refresh_expires_at"),
        })
    }

    /// Puts them in the config file's record.
    pub fn store(&self, file: &mut ConfigFile) {
        file.access_token = Some(self.access.clone());
        file.access_expires_at = self.access_expires_at;
        file.refresh_token = Some(self.refresh.clone());
        file.refresh_expires_at = self.refresh_expires_at;
    }
}

/// An error and its sources on one line (reqwest's own text is terse: "error sending
/// request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn http_client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .user_agent(concat!("hostctl/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        // Longer than the panel's own request timeout (120 s by default), so its 408 arrives.
        .timeout(Duration::from_secs(150))
        // An API answers; it does not redirect. Following one could carry the token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure::io(format!("cannot set up HTTP: {}", chain(&e))))
}

/// Whether people are at the keyboard (stdin is a terminal): only then does hostctl prompt.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised() {
        for (given, want) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            (
                "https://panel.example.com/api/v1/",
                "https://panel.example.com",
            ),
            ("https://example.com/panel/", "https://example.com/panel"),
        ] {
            assert_eq!(normalize_url(given).ok().as_deref(), Some(want), "{given}");
        }
        for bad in [
            "ftp://x",
            "panel.example.com",
            "https://u:p@x",
            "https://x/?a=1",
            "https://x/#f",
        ] {
            let err = normalize_url(bad).err().map(|f| f.exit);
            assert_eq!(err, Some(2), "{bad}");
        }
    }

    #[test]
    fn clear_text_is_flagged_only_off_this_machine() {
        assert!(clear_text_remote("http://panel.example.com"));
        assert!(clear_text_remote("http://10.0.0.1:8080"));
        assert!(!clear_text_remote("http://127.0.0.1:8080"));
        assert!(!clear_text_remote("http://[::1]:8080"));
        assert!(!clear_text_remote("http://localhost:8080"));
        assert!(!clear_text_remote("https://panel.example.com"));
    }
}
