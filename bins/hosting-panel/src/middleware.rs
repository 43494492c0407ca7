//! The request pipeline's own steps: authentication, the client's address, the head-size
//! limit, JSON bodies for errors produced below the handlers, request ids and their spans.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hosting_core::types::IpNetwork;
use tracing::Span;

use hosting_core::panel::{Actor, Grant};

use crate::app::{AppState, REQUEST_ID};
use crate::error::ApiError;
use crate::extract::ClientIp;

/// The only requests served without a bearer token.
pub const PUBLIC_ENDPOINTS: [(Method, &str); 5] = [
    (Method::POST, "/api/v1/auth/login"),
    (Method::POST, "/api/v1/auth/refresh"),
    (Method::GET, "/health"),
    (Method::GET, "/ready"),
    (Method::GET, "/api/v1/openapi.json"),
];

/// Whether `method path` is on the allowlist.
pub fn is_public(method: &Method, path: &str) -> bool {
    PUBLIC_ENDPOINTS
        .iter()
        .any(|(m, p)| m == method && *p == path)
}

/// The bearer token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or_else(|| ApiError::unauthenticated("send Authorization: Bearer <token>"))?;
    if values.next().is_some() {
        return Err(ApiError::unauthenticated(
            "send exactly one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthenticated("send Authorization: Bearer <token>"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 4096 {
        return Err(ApiError::unauthenticated(
            "send Authorization: Bearer <token>",
        ));
    }
    Ok(token)
}

/// Lets the allowlist through; everything else needs a bearer token that
/// [`hosting_core::panel::Panel::authenticate`] accepts, whose [`hosting_core::panel::Actor`]
/// is put in the request's extensions for the handler.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ClientIp>()
        .copied()
        .unwrap_or_default()
        .0;
    let token = match bearer(req.headers()) {
        Ok(token) => token.to_owned(),
        Err(e) => return e.into_response(),
    };
    match state.panel().authenticate(&token, ip).await {
        Ok(actor) => {
            if let Err(e) = within_limits(&state, &actor) {
                return ApiError::from(e).into_response();
            }
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Counts the request against its credential's and its tenant's limits; a 429 with
/// `Retry-After` when either is spent. Refused requests reach no use case, so they cost no
/// work and no audit row.
fn within_limits(state: &AppState, actor: &Actor) -> Result<(), hosting_core::Error> {
    let limits = state.limits();
    let credential = match actor.grant() {
        Grant::Session { id, .. } => format!("session:{id}"),
        Grant::ApiToken { id, .. } => format!("api_token:{id}"),
        Grant::Embedder => format!("user:{}", actor.caller().user),
    };
    let refused = |retry: hosting_core::auth::RetryAfter| hosting_core::Error::RateLimited {
        retry_after_secs: retry.secs(),
    };
    limits.per_credential.check(&credential).map_err(refused)?;
    limits
        .per_tenant
        .check(&format!("tenant:{}", actor.caller().tenant))
        .map_err(refused)
}

/// Whether `ip` is inside `net`.
pub fn contains(net: &IpNetwork, ip: IpAddr) -> bool {
    let prefix = u32::from(net.prefix());
    match (net.addr(), ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        (IpAddr::V4(_), IpAddr::V6(a)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| contains(net, IpAddr::V4(a))),
        (IpAddr::V6(_), IpAddr::V4(_)) => false,
    }
}

fn trusted(proxies: &[IpNetwork], ip: IpAddr) -> bool {
    proxies.iter().any(|n| contains(n, ip))
}

/// One hop's address (`192.0.2.1`, `[2001:db8::1]:4711`, `1.2.3.4:80`).
fn forwarded_for(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    v.parse::<IpAddr>()
        .ok()
        .or_else(|| v.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The hops `X-Forwarded-For` reports, newest first (every header line, in order), each
/// `None` when unreadable.
///
/// Only `X-Forwarded-For` is read: a proxy that appends the peer it saw to it (nginx's
/// `$proxy_add_x_forwarded_for`, HAProxy's `option forwardfor`) leaves any `Forwarded` header
/// the client wrote as it was, so believing `Forwarded` would let a client pick its address.
fn reported_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        match value.to_str() {
            Ok(text) => hops.extend(text.split(',').map(forwarded_for)),
            Err(_) => hops.push(None),
        }
    }
    hops.reverse();
    hops
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case
/// the nearest hop `X-Forwarded-For` reports that is not itself a trusted proxy. Hops are
/// read right to left, newest first, because only the ones trusted proxies appended are
/// facts: everything left of the first untrusted hop was written by the client. An
/// unreadable hop ends the walk at the last trusted hop before it.
pub fn resolve_client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    proxies: &[IpNetwork],
) -> Option<IpAddr> {
    let peer = peer?;
    let mut client = peer;
    for hop in reported_hops(headers) {
        if !trusted(proxies, client) {
            break;
        }
        match hop {
            Some(hop) => client = hop,
            None => break,
        }
    }
    Some(client)
}

/// Records the client's address ([`ClientIp`]) for the authentication layer, the login
/// throttle and the audit log.
pub async fn client_ip(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = resolve_client_ip(peer, req.headers(), &state.settings().trusted_proxies);
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

/// Refuses a request whose head (target and headers) is larger than allowed, with a 431.
pub async fn limit_head(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let size = req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > state.settings().max_header_bytes {
        return ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request head is {size} bytes; at most {} are accepted",
                state.settings().max_header_bytes
            ),
        )
        .into_response();
    }
    next.run(req).await
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Gives every error response the JSON error body, including the ones produced below the
/// handlers (a 405 from the router, a 413 from the body limit, a 408 from the timeout).
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut replaced = ApiError::from_status(status).into_response();
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
}

/// Drops a request id the client sent: ids are the server's, so a log line cannot be made to
/// carry someone else's.
pub async fn strip_request_id(mut req: Request) -> Request {
    req.headers_mut().remove(&REQUEST_ID);
    req
}

/// The span every request's log lines are in: its id, method and path (never the query,
/// headers or body).
pub fn request_span(req: &Request) -> Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use axum::http::HeaderValue;

    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("network")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn networks_contain_addresses() {
        assert!(contains(&net("10.0.0.0/8"), ip("10.1.2.3")));
        assert!(!contains(&net("10.0.0.0/8"), ip("11.0.0.1")));
        assert!(contains(&net("0.0.0.0/0"), ip("1.2.3.4")));
        assert!(contains(&net("2001:db8::/32"), ip("2001:db8::1")));
        assert!(!contains(&net("2001:db8::/32"), ip("2001:db9::1")));
        assert!(contains(&net("127.0.0.1"), ip("::ffff:127.0.0.1")));
        assert!(!contains(&net("::1"), ip("127.0.0.1")));
    }

    #[test]
    fn forwarded_headers_only_from_trusted_peers() {
        let proxies = [net("10.0.0.0/8")];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.7, 10.0.0.2"),
        );
        // Untrusted peer: its headers are ignored.
        assert_eq!(
            resolve_client_ip(Some(ip("192.0.2.1")), &headers, &proxies),
            Some(ip("192.0.2.1"))
        );
        // Trusted peer: the nearest untrusted hop, not the leftmost (which the client wrote).
        assert_eq!(
            resolve_client_ip(Some(ip("10.0.0.1")), &headers, &proxies),
            Some(ip("198.51.100.7"))
        );
        // A client's own `Forwarded` never wins over what the proxy appended.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.3"),
        );
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 198.51.100.7"),
        );
        assert_eq!(
            resolve_client_ip(Some(ip("10.0.0.1")), &headers, &proxies),
            Some(ip("198.51.100.7"))
        );
        headers.remove("x-forwarded-for");
        assert_eq!(
            resolve_client_ip(Some(ip("10.0.0.1")), &headers, &proxies),
            Some(ip("10.0.0.1")),
            "Forwarded alone: the proxy itself"
        );
        // Two header lines are one list, in order.
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.1"));
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("[2001:db8::9]:443, 10.0.0.5"),
        );
        assert_eq!(
            resolve_client_ip(Some(ip("10.0.0.1")), &headers, &proxies),
            Some(ip("2001:db8::9"))
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(
            resolve_client_ip(Some(ip("10.0.0.1")), &headers, &proxies),
            Some(ip("10.0.0.1"))
        );
        // Junk the client wrote left of the proxy's hop does not hide the client.
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("not-an-ip, 10.0.0.9, 198.51.100.8, 10.0.0.2"),
        );
        assert_eq!(
            resolve_client_ip(Some(ip("10.0.0.1")), &headers, &proxies),
            Some(ip("198.51.100.8"))
        );
    }

    #[test]
    fn bearer_parsing() {
        let mut headers = HeaderMap::new();
        assert!(bearer(&headers).is_err());
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&headers).expect("token"), "abc");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&headers).is_err());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(bearer(&headers).is_err());
    }
}
