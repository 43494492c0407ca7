//! The API as a router an embedder mounts: [`Api::router`] returns every route of the panel's
//! HTTP API behind one authentication layer, with the security headers, limits and request ids
//! around it.
//!
//! The authentication layer is applied to the finished router, fallback included, in one
//! place ([`Api::router`]); every route is also registered in the OpenAPI document by
//! construction (utoipa-axum), and the route-auth test asks each documented path with every
//! method without credentials. A route added anywhere else is therefore either behind the layer
//! or not served at all.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use hosting_core::auth::RateLimiter;
use hosting_core::clock::{Clock, SystemClock};
use hosting_core::model::NodeId;
use hosting_core::panel::Panel;
use hosting_core::types::{DbEngine, IpNetwork};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::middleware;
use crate::read_cache::ReadCache;
use crate::routes;

/// The limits and policies of the HTTP layer (the panel's own policies are in
/// [`hosting_core::panel::AuthSettings`]).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest request body; larger is a 413.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers); larger is a 431.
    pub max_header_bytes: usize,
    /// Deepest JSON nesting in a body; deeper is a 400.
    pub max_json_depth: usize,
    /// Peers whose `X-Forwarded-For` is believed for the client address, read right to left
    /// past every trusted hop. `Forwarded` is never read: a proxy that appends to
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`) passes a client's `Forwarded`
    /// through untouched.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Origins allowed to call from a browser; empty turns CORS off.
    pub cors_allowed_origins: Vec<HeaderValue>,
    /// The longest a request may take before the client gets a 408 (the change it started
    /// still finishes and is audited).
    pub request_timeout: Duration,
    /// Bytes of serialized answers kept for repeated reads; 0 keeps none. Answers are only
    /// kept when the panel's store counts its writes (a `TrackedStore`).
    pub read_cache_bytes: usize,
    /// Requests one credential (session or API token) may make in `rate_limit_window`; more
    /// are a 429 with `Retry-After`.
    pub rate_limit_per_credential: u32,
    /// Requests all credentials of one tenant may make in `rate_limit_window`.
    pub rate_limit_per_tenant: u32,
    /// The window of both request limits.
    pub rate_limit_window: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_json_depth: 32,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
            request_timeout: Duration::from_secs(120),
            read_cache_bytes: 16 * 1024 * 1024,
            rate_limit_per_credential: 300,
            rate_limit_per_tenant: 1500,
            rate_limit_window: Duration::from_secs(10),
        }
    }
}

/// A customer-database server a node offers, as customers connect to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseEndpoint {
    /// The engine.
    pub engine: DbEngine,
    /// Host customers connect to.
    pub host: String,
    /// Port customers connect to.
    pub port: u16,
}

/// What the API may tell clients about a node the embedder attached: where its database
/// servers are, and what to install when it lacks something a request asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeNotes {
    /// Said when a request needs a web server the node does not run.
    pub missing_web_server: Option<String>,
    /// Said when a request needs a PHP version the node does not have.
    pub missing_php: Option<String>,
    /// Said when a request needs a database engine the node does not offer.
    pub missing_database: Option<String>,
    /// Its customer-database servers.
    pub databases: Vec<DatabaseEndpoint>,
}

struct Inner {
    panel: Arc<Panel>,
    settings: ApiSettings,
    limits: RequestLimits,
    reads: ReadCache,
    notes: RwLock<BTreeMap<NodeId, NodeNotes>>,
    openapi_json: OnceLock<String>,
}

/// What every handler shares: the panel and the HTTP settings.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The panel.
    pub fn panel(&self) -> &Arc<Panel> {
        &self.0.panel
    }

    /// The HTTP settings.
    pub fn settings(&self) -> &ApiSettings {
        &self.0.settings
    }

    /// The per-credential and per-tenant request limits.
    pub(crate) fn limits(&self) -> &RequestLimits {
        &self.0.limits
    }

    /// Kept answers to repeated reads.
    pub(crate) fn reads(&self) -> &ReadCache {
        &self.0.reads
    }

    /// What is known about `node`.
    pub fn notes(&self, node: NodeId) -> NodeNotes {
        self.0
            .notes
            .read()
            .ok()
            .and_then(|n| n.get(&node).cloned())
            .unwrap_or_default()
    }

    /// The served OpenAPI document.
    pub fn openapi_json(&self) -> &str {
        self.0.openapi_json.get().map_or("{}", String::as_str)
    }
}

/// The panel's HTTP API over one [`Panel`].
#[derive(Debug, Clone)]
pub struct Api {
    state: AppState,
}

impl Api {
    /// The API over `panel` with `settings`.
    pub fn new(panel: Arc<Panel>, settings: ApiSettings) -> Self {
        Self {
            state: AppState(Arc::new(Inner {
                panel,
                reads: ReadCache::new(settings.read_cache_bytes),
                limits: RequestLimits::new(&settings),
                settings,
                notes: RwLock::new(BTreeMap::new()),
                openapi_json: OnceLock::new(),
            })),
        }
    }

    /// Tells the API about a node's database servers and missing pieces (call it next to
    /// [`Panel::attach_node`]).
    pub fn describe_node(&self, node: NodeId, notes: NodeNotes) {
        if let Ok(mut all) = self.state.0.notes.write() {
            all.insert(node, notes);
        }
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Every route (`/api/v1/...`, `/health`, `/ready`) behind the authentication layer, with
    /// security headers, limits, CORS (when origins are configured), request ids and tracing.
    ///
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so the client
    /// address is known (it is `None` otherwise). Mounted with `Router::nest`, the paths below
    /// are relative to the nesting prefix.
    pub fn router(&self) -> Router {
        let (routes, doc) = routes::all().split_for_parts();
        let json = doc.to_json().unwrap_or_else(|_| "{}".to_owned());
        let _ = self.state.0.openapi_json.set(json);
        let settings = self.state.settings().clone();
        let state = self.state.clone();

        // Innermost first: each `.layer` wraps everything above it.
        let router = routes
            .fallback(routes::fallback)
            .with_state(state.clone())
            // The one authentication layer: every route and the fallback are inside it.
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                middleware::authenticate,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                middleware::client_ip,
            ))
            .layer(DefaultBodyLimit::max(settings.max_body_bytes))
            .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                settings.request_timeout,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                middleware::limit_head,
            ))
            .layer(axum::middleware::from_fn(middleware::json_errors));
        let router = match cors(&settings.cors_allowed_origins) {
            Some(cors) => router.layer(cors),
            None => router,
        };
        router
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(middleware::request_span)
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
            .layer(axum::middleware::map_request(middleware::strip_request_id))
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::PROXY_AUTHORIZATION,
                header::COOKIE,
            ]))
    }
}

/// Request floods shed per credential and per tenant, in this process: a limit on load, never
/// an authorization decision (several panel processes each allow their share).
#[derive(Debug)]
pub(crate) struct RequestLimits {
    pub(crate) per_credential: RateLimiter,
    pub(crate) per_tenant: RateLimiter,
}

impl RequestLimits {
    /// Keys tracked per limiter; each holds at most its limit's timestamps.
    const MAX_KEYS: usize = 10_000;

    fn new(settings: &ApiSettings) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self {
            per_credential: RateLimiter::new(
                settings.rate_limit_per_credential,
                settings.rate_limit_window,
                clock.clone(),
            )
            .with_max_keys(Self::MAX_KEYS),
            per_tenant: RateLimiter::new(
                settings.rate_limit_per_tenant,
                settings.rate_limit_window,
                clock,
            )
            .with_max_keys(Self::MAX_KEYS),
        }
    }
}

/// The header carrying each request's id, in both directions.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// CORS for the configured origins; `None` (no CORS headers at all) when there are none.
fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([REQUEST_ID.clone(), header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// The OpenAPI document of the API, without serving it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::all().split_for_parts().1
}
