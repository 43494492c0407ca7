//! Extractors that turn request parts into hosting-core's validated types, and every way a
//! request can be unreadable into a JSON error naming the field.
//!
//! Handlers never see raw strings: a JSON body is checked for its media type, size and depth
//! before it is parsed, then parsed straight into the request DTO (whose fields are
//! hosting-core newtypes, so their own rules run during parsing); a path id and the paging
//! query are parsed the same way (an empty value is refused like any other bad one).

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use hosting_core::panel::Actor;
use hosting_core::{PageLimit, PageRequest};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::app::AppState;
use crate::error::ApiError;

/// A JSON request body parsed into `T`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// Whether `bytes` holds JSON nested deeper than `max` (arrays and objects). Strings are
/// skipped, escapes included, so brackets inside them do not count.
pub fn too_deep(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether a `Content-Type` names JSON (`application/json`, `application/x+json`, with any
/// parameters).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The text of a serde_json error without its ` at line L column C` suffix.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// `path` and `name` joined the way serde_path_to_error writes paths (for an unknown field
/// the path already ends with it).
fn join(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_owned()
    } else if path == name || path.ends_with(&format!(".{name}")) {
        path.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The name between the first pair of backticks in a serde message.
fn quoted(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// Turns a parse failure into a 400 (unreadable JSON) or a 422 naming the field.
pub fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    let message = without_position(inner);
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {message}"),
        ),
        Category::Data => {
            let path = e.path().to_string();
            let (code, field) = if message.starts_with("unknown field") {
                let name = quoted(&message).unwrap_or("?");
                ("unknown_field", join(&path, name))
            } else if message.starts_with("missing field") {
                let name = quoted(&message).unwrap_or("?");
                ("missing_field", join(&path, name))
            } else if message.starts_with("invalid type") || message.starts_with("invalid length") {
                ("invalid_type", path.clone())
            } else {
                ("invalid", path.clone())
            };
            let field = if field == "." {
                "body".to_owned()
            } else {
                field
            };
            ApiError::unprocessable(code, field, message)
        }
    }
}

/// The longest integer [`integral_numbers`] spells out; a longer one is out of every field's
/// range anyway, so it is left as the float it was written as (and refused as one).
const MAX_INTEGER_DIGITS: usize = 40;

/// `number` (a JSON number token) as plain integer digits when its value is a whole number
/// written with a fraction or an exponent (`15.0`, `1.5e1`, `2E3`), else `None`.
fn integral(number: &[u8]) -> Option<Vec<u8>> {
    let (negative, rest) = match number.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, number),
    };
    let mantissa_end = rest
        .iter()
        .position(|b| matches!(b, b'e' | b'E'))
        .unwrap_or(rest.len());
    let (mantissa, exponent) = rest.split_at(mantissa_end);
    let exponent: i64 = match exponent.get(1..) {
        None => 0,
        Some(e) => std::str::from_utf8(e).ok()?.parse().ok()?,
    };
    let (int, frac) = match mantissa.iter().position(|b| *b == b'.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None => (mantissa, &[][..]),
    };
    if mantissa.len() == rest.len() && !mantissa.contains(&b'.') {
        // Already an integer.
        return None;
    }
    let mut digits: Vec<u8> = int.iter().chain(frac).copied().collect();
    let mut scale = exponent.checked_sub(i64::try_from(frac.len()).ok()?)?;
    while scale < 0 && digits.last() == Some(&b'0') {
        digits.pop();
        scale += 1;
    }
    if scale < 0 {
        return None;
    }
    let zeros = usize::try_from(scale).ok()?;
    let first = digits.iter().position(|b| *b != b'0');
    let mut out = Vec::with_capacity(MAX_INTEGER_DIGITS + 1);
    match first {
        None => out.push(b'0'),
        Some(first) => {
            if digits.len() - first + zeros > MAX_INTEGER_DIGITS {
                return None;
            }
            if negative {
                out.push(b'-');
            }
            out.extend_from_slice(&digits[first..]);
            out.resize(out.len() + zeros, b'0');
        }
    }
    Some(out)
}

/// `bytes` with every whole number written as a float (`15.0`, `1e3`) rewritten as an integer.
///
/// JSON Schema's `integer` admits `15.0`, and so a client built from the API document may send
/// it; serde would refuse it for an integer field. Numbers inside strings are left alone; the
/// bytes are borrowed when nothing changes.
fn integral_numbers(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let end = bytes[i..]
                .iter()
                .position(|c| {
                    !(c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
                })
                .map_or(bytes.len(), |n| i + n);
            if let Some(integer) = integral(&bytes[i..end]) {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                buf.extend_from_slice(&bytes[copied..i]);
                buf.extend_from_slice(&integer);
                copied = end;
            }
            i = end;
            continue;
        }
        i += 1;
    }
    match out {
        None => std::borrow::Cow::Borrowed(bytes),
        Some(mut buf) => {
            buf.extend_from_slice(&bytes[copied..]);
            std::borrow::Cow::Owned(buf)
        }
    }
}

/// Parses `bytes` as JSON into `T` with the limits of `max_depth`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], max_depth: usize) -> Result<T, ApiError> {
    if too_deep(bytes, max_depth) {
        return Err(ApiError::bad_request(
            "json_too_deep",
            format!("the body nests arrays and objects deeper than {max_depth} levels"),
        ));
    }
    let bytes = integral_numbers(bytes);
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&e))?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {}", without_position(&e)),
        )
    })?;
    Ok(value)
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !is_json(content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the body is larger than {} bytes",
                        state.settings().max_body_bytes
                    ),
                )
            } else {
                ApiError::bad_request("bad_body", "the body could not be read")
            }
        })?;
        parse_json(&bytes, state.settings().max_json_depth).map(JsonBody)
    }
}

/// A path parameter parsed into `T` (an id type of hosting-core).
#[derive(Debug, Clone, Copy)]
pub struct PathId<T>(pub T);

impl<T, S> FromRequestParts<S> for PathId<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathId(v))
            .map_err(|_| ApiError::unprocessable("invalid", "id", "invalid id: must be an integer"))
    }
}

/// `?after=&limit=`: keyset paging. Unknown parameters are refused, like unknown body fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct Paging(pub PageRequest);

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::bad_request("bad_query", "the query string cannot be read"))?;
        let mut page = PageRequest::default();
        let mut seen = (false, false);
        for (key, value) in pairs {
            match key.as_str() {
                "after" if !seen.0 => {
                    seen.0 = true;
                    // An empty value is a bad value, not a missing one: `?after=` is refused.
                    page.after = Some(value.parse().map_err(|_| {
                        ApiError::unprocessable(
                            "invalid",
                            "after",
                            "invalid after: must be an integer id",
                        )
                    })?);
                }
                "limit" if !seen.1 => {
                    seen.1 = true;
                    let n: u32 = value.parse().map_err(|_| {
                        ApiError::unprocessable(
                            "invalid",
                            "limit",
                            "invalid limit: must be 1 to 500",
                        )
                    })?;
                    page.limit = PageLimit::try_from(n)?;
                }
                "after" | "limit" => {
                    return Err(ApiError::unprocessable(
                        "invalid",
                        key.clone(),
                        format!("{key} is given twice"),
                    ));
                }
                _ => {
                    return Err(ApiError::unprocessable(
                        "unknown_field",
                        key.clone(),
                        format!("unknown query parameter {key:?}; expected after or limit"),
                    ));
                }
            }
        }
        Ok(Paging(page))
    }
}

/// Refuses any query string (endpoints that take none).
#[derive(Debug, Clone, Copy)]
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.uri.query() {
            None | Some("") => Ok(NoQuery),
            Some(_) => Err(ApiError::unprocessable(
                "unknown_field",
                "query",
                "this endpoint takes no query parameters",
            )),
        }
    }
}

/// The authenticated actor, put there by the authentication layer. A handler that takes it
/// fails closed (401) if it were ever reached without that layer.
#[derive(Debug, Clone)]
pub struct Authed(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Authed)
            .ok_or_else(|| ApiError::unauthenticated("authentication is required"))
    }
}

/// The client's address as the client-IP layer determined it (the socket peer, or what a
/// trusted proxy says).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        domain: hosting_core::types::DomainName,
        aliases: Vec<hosting_core::types::DomainName>,
        n: u32,
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert!(!too_deep(br#"{"a":"[[[[[[[[[[\"{{{{"}"#, 2));
        assert!(too_deep(b"[[[1]]]", 2));
        assert!(!too_deep(b"[[1]]", 2));
    }

    #[test]
    fn errors_name_the_field_and_kind() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"domain":"a;b.example","aliases":[],"n":1}"#,
                "invalid",
                "domain",
            ),
            (
                r#"{"domain":"a.example","aliases":["b.example","../x"],"n":1}"#,
                "invalid",
                "aliases[1]",
            ),
            (
                r#"{"domain":"a.example","aliases":[],"n":"1"}"#,
                "invalid_type",
                "n",
            ),
            (
                r#"{"domain":"a.example","aliases":[],"n":1,"x":2}"#,
                "unknown_field",
                "x",
            ),
            (
                r#"{"domain":"a.example","n":1}"#,
                "missing_field",
                "aliases",
            ),
        ];
        for (body, code, field) in cases {
            let err = parse_json::<Body>(body.as_bytes(), 32).expect_err(body);
            assert_eq!(err.code(), *code, "{body}: {}", err.message());
            assert_eq!(err.field(), Some(*field), "{body}");
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        }
        let err = parse_json::<Body>(b"{\"domain\":", 32).expect_err("eof");
        assert_eq!(err.code(), "malformed_json");
        let err = parse_json::<Body>(br#"{"domain":"a.example","aliases":[],"n":1} {}"#, 32)
            .expect_err("trailing");
        assert_eq!(err.code(), "malformed_json");
    }

    #[test]
    fn whole_numbers_written_as_floats_are_integers() {
        let cases: &[(&str, &str)] = &[
            (r#"{"n":15.0}"#, r#"{"n":15}"#),
            (
                r#"{"n":1.5e1,"m":[2E3,-0.0,-7.00]}"#,
                r#"{"n":15,"m":[2000,0,-7]}"#,
            ),
            (r#"{"n":1e0}"#, r#"{"n":1}"#),
            (r#"{"s":"1.0","n":1.5}"#, r#"{"s":"1.0","n":1.5}"#),
            (r#"{"s":"a\"1.0","n":12e-1}"#, r#"{"s":"a\"1.0","n":12e-1}"#),
            (r#"{"n":1e400}"#, r#"{"n":1e400}"#),
            (r#"{"n":120e-1}"#, r#"{"n":12}"#),
        ];
        for (input, output) in cases {
            assert_eq!(
                std::str::from_utf8(&integral_numbers(input.as_bytes())).expect("utf-8"),
                *output,
                "{input}"
            );
        }
        let body: Body =
            parse_json(br#"{"domain":"a.example","aliases":[],"n":3.0}"#, 32).expect("body");
        assert_eq!(body.n, 3);
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
