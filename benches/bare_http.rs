//! `bare-http`: the reference servers the panel's load benchmark (`panel_load`) compares
//! against. An axum server that answers `GET` on a few fixed paths with response bytes captured
//! from the real panel (the same body and the same headers) from memory: no authentication, no
//! middleware, no logging, no decoding, no JSON.
//!
//! ```text
//! bare-http ADDR PATH HEAD_FILE BODY_FILE [PATH HEAD_FILE BODY_FILE ...]
//! bare-http ADDR --db URL PATH HEAD_FILE BODY_FILE QUERY_FILE [...]
//! ```
//! `HEAD_FILE` holds one `name: value` header a line (as the panel sent them, without
//! `content-length` and `date`, which hyper writes itself); `BODY_FILE` the body's bytes.
//!
//! With `--db`, each answer first runs a statement through a raw sqlx `AnyPool` of 10
//! connections on `URL` (the panel store's default pool size) and fetches every row, then
//! answers the same captured bytes: the floor of any handler that asks the database for the
//! same rows through sqlx. `QUERY_FILE`'s first line is the statement (placeholders as the
//! engine wants them), each further line an integer bound to the next placeholder.
//!
//! It prints `listening on ADDR` once it accepts connections and serves until killed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use sqlx::AnyPool;

/// A statement and its integer arguments.
struct Query {
    sql: String,
    binds: Vec<i64>,
}

/// One captured answer, and the statement to run before it (with `--db`).
#[derive(Clone)]
struct Canned {
    headers: HeaderMap,
    body: Bytes,
    query: Option<(AnyPool, Arc<Query>)>,
}

fn load_head(head_file: &str) -> Result<HeaderMap, String> {
    let head = std::fs::read_to_string(head_file).map_err(|e| format!("{head_file}: {e}"))?;
    let mut headers = HeaderMap::new();
    for line in head.lines().filter(|l| !l.trim().is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("{head_file}: not a header line: {line:?}"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| format!("{head_file}: {name:?}: {e}"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|e| format!("{head_file}: {value:?}: {e}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn load_query(query_file: &str) -> Result<Query, String> {
    let text = std::fs::read_to_string(query_file).map_err(|e| format!("{query_file}: {e}"))?;
    let mut lines = text.lines();
    let sql = lines
        .next()
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| format!("{query_file}: no statement"))?
        .to_owned();
    let binds = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .map_err(|e| format!("{query_file}: {l:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Query { sql, binds })
}

async fn answer(canned: Canned) -> Response {
    if let Some((pool, query)) = &canned.query {
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(query.sql.clone()));
        for bind in &query.binds {
            statement = statement.bind(*bind);
        }
        match statement.fetch_all(pool).await {
            Ok(rows) if !rows.is_empty() => {}
            Ok(_) => return status(StatusCode::NOT_FOUND),
            Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
    let mut response = Response::new(Body::from(canned.body));
    *response.status_mut() = StatusCode::OK;
    *response.headers_mut() = canned.headers;
    response
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

fn router(args: &[String], pool: Option<&AnyPool>) -> Result<Router, String> {
    let group = if pool.is_some() { 4 } else { 3 };
    if args.is_empty() || !args.len().is_multiple_of(group) {
        return Err(format!("expected groups of {group} arguments per path"));
    }
    let mut router = Router::new();
    for route in args.chunks(group) {
        let (path, head, body) = match route {
            [path, head, body, ..] => (path, head, body),
            _ => return Err("a path without its files".to_owned()),
        };
        let query = match (pool, route.get(3)) {
            (Some(pool), Some(file)) => Some((pool.clone(), Arc::new(load_query(file)?))),
            _ => None,
        };
        let canned = Canned {
            headers: load_head(head)?,
            body: Bytes::from(std::fs::read(body).map_err(|e| format!("{body}: {e}"))?),
            query,
        };
        router = router.route(path, get(move || answer(canned.clone())));
    }
    Ok(router)
}

async fn serve(addr: SocketAddr, db: Option<String>, routes: Vec<String>) -> Result<(), String> {
    let pool = match db {
        Some(url) => {
            sqlx::any::install_default_drivers();
            Some(
                sqlx::any::AnyPoolOptions::new()
                    .max_connections(10)
                    .connect(&url)
                    .await
                    .map_err(|e| format!("cannot connect to the database: {e}"))?,
            )
        }
        None => None,
    };
    let router = router(&routes, pool.as_ref())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {local}");
    axum::serve(listener, router)
        .await
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: bare-http ADDR [--db URL] PATH HEAD_FILE BODY_FILE [QUERY_FILE] ...");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match args.remove(0).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bare-http: ADDR: {e}");
            return ExitCode::from(2);
        }
    };
    let db = if args.first().is_some_and(|a| a == "--db") && args.len() >= 2 {
        args.remove(0);
        Some(args.remove(0))
    } else {
        None
    };
    // The same runtime the panel server builds: multi-threaded, one worker per core.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bare-http: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr, db, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-http: {e}");
            ExitCode::FAILURE
        }
    }
}
