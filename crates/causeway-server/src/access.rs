//! What a trusted server refuses before any handler runs: requests whose `Host` it does not
//! answer to (DNS rebinding), writes from web pages on other origins (cross-site request
//! forgery, even with `Content-Type: text/plain`), and URLs carrying NUL characters. It also
//! answers CORS preflights for the origins it allows, and gives every error body without JSON
//! (a 405, a 413, a bad path) the protocol's JSON shape.
//!
//! The defaults follow MLflow ≥ 3.5: hosts are loopback names, private addresses and the bound
//! address; origins are the loopback ones; `*` in a pattern matches any run of characters.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The largest error body rewritten into JSON (the texts axum writes are short).
const MAX_REWRITTEN_BODY: usize = 64 * 1024;

/// Who may call: which `Host` names the server answers to and which web origins may write.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// Host patterns besides the defaults (`*` allows any host).
    pub allowed_hosts: Vec<String>,
    /// Origin patterns besides the loopback ones (`*` allows any origin).
    pub allowed_origins: Vec<String>,
    /// The address the server is bound to (its own host is always allowed).
    pub bound: SocketAddr,
    /// Whether `Host` is checked at all. A server that requires tokens leaves it off: a page
    /// rebound to it has no token, and clients reach such servers by names (a Kubernetes
    /// service, a load balancer) nobody listed.
    pub check_hosts: bool,
}

impl AccessPolicy {
    /// The defaults for a server bound to `bound`, plus the given patterns.
    pub fn new(bound: SocketAddr, allowed_hosts: Vec<String>, allowed_origins: Vec<String>) -> Self {
        Self { allowed_hosts, allowed_origins, bound, check_hosts: true }
    }

    /// Whether a request whose `Host` header is `host` (`name[:port]`) is answered.
    pub fn allows_host(&self, host: &str) -> bool {
        let name = host_name(host);
        if self.allowed_hosts.iter().any(|pattern| matches(pattern, host) || matches(pattern, name)) {
            return true;
        }
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(address) => address == self.bound.ip() || is_local(address),
            Err(_) => false,
        }
    }

    /// Whether a page on `origin` (`scheme://host[:port]`) may write, given the request's `Host`.
    pub fn allows_origin(&self, origin: &str, host: Option<&str>) -> bool {
        if self.allowed_origins.iter().any(|pattern| matches(pattern, origin)) {
            return true;
        }
        let Some((_, authority)) = origin.split_once("://") else { return false };
        // The server's own pages, and pages served from loopback (notebooks, local UIs).
        if host.is_some_and(|host| host.eq_ignore_ascii_case(authority)) {
            return true;
        }
        let name = host_name(authority);
        name.eq_ignore_ascii_case("localhost")
            || name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// `name` of `name:port`, `[v6]` of `[v6]:port`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(name, _)| &host[..name.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|character| character.is_ascii_digit()) && !name.contains(':') => name,
        _ => host,
    }
}

/// Loopback, private (RFC 1918, unique local) and link-local addresses.
fn is_local(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Case-insensitive match of `text` against `pattern`, where `*` matches any run of characters.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let pieces: Vec<&str> = pattern.split('*').collect();
    if pieces.len() == 1 {
        return pattern == text;
    }
    let mut rest = text.as_str();
    for (index, piece) in pieces.iter().enumerate() {
        if index == 0 {
            match rest.strip_prefix(piece) {
                Some(after) => rest = after,
                None => return false,
            }
        } else if index == pieces.len() - 1 {
            return rest.ends_with(piece);
        } else {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Whether a request changes something (everything but GET, HEAD and OPTIONS).
fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// An error in the shape the path's protocol uses: MLflow's `{error_code, message}` under
/// `/api/`, OpenAI's `{error: {message, type, param, code}}` on the gateway's routes,
/// `{error, code}` elsewhere.
pub fn protocol_error(path: &str, status: StatusCode, code: &str, message: String) -> Response {
    let body = if path.starts_with("/api/") {
        json!({"error_code": code, "message": message})
    } else if crate::openai::is_openai_route(path) {
        crate::openai::error_body(status, code, &message)
    } else {
        json!({"error": message, "code": code})
    };
    (status, axum::Json(body)).into_response()
}

/// The middleware: refuses unknown hosts, cross-origin writes and NUL characters in the URL,
/// answers preflights, and gives error bodies the protocol's JSON shape.
pub async fn guard(State(policy): State<Arc<AccessPolicy>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let host = request.headers().get(header::HOST).and_then(|value| value.to_str().ok()).map(str::to_string);
    if let Some(host) = host.as_deref()
        && policy.check_hosts
        && !policy.allows_host(host)
    {
        return protocol_error(
            &path,
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "this server does not answer to host `{host}`; start it with --allowed-hosts '{}' to allow it",
                host_name(host)
            ),
        );
    }
    let origin = request.headers().get(header::ORIGIN).and_then(|value| value.to_str().ok()).map(str::to_string);
    let allowed_origin = origin.as_deref().filter(|origin| policy.allows_origin(origin, host.as_deref()));
    if let Some(origin) = origin.as_deref()
        && allowed_origin.is_none()
        && (is_write(request.method()) || request.method() == Method::OPTIONS)
    {
        return protocol_error(
            &path,
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "cross-origin request from `{origin}` refused; start the server with --cors-allowed-origins '{origin}' to allow it"
            ),
        );
    }
    if request.uri().to_string().contains("%00") {
        return protocol_error(
            &path,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "the URL contains a NUL character (%00), which no name or value may hold".into(),
        );
    }
    if request.method() == Method::OPTIONS
        && let Some(origin) = allowed_origin
    {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        return response;
    }
    let allow_origin = allowed_origin.and_then(|origin| HeaderValue::from_str(origin).ok());
    let mut response = json_error_body(&path, next.run(request).await).await;
    if let Some(value) = allow_origin {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// Rewrites an error response without a JSON body (axum's own 405, 413 and extractor
/// rejections) into the protocol's JSON shape, keeping its status and text.
async fn json_error_body(path: &str, response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REWRITTEN_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("REQUEST_LIMIT_EXCEEDED", "the request body is larger than this route accepts".to_string())
        }
        StatusCode::METHOD_NOT_ALLOWED => ("BAD_REQUEST", format!("this method is not allowed on {path}")),
        StatusCode::NOT_FOUND => ("ENDPOINT_NOT_FOUND", format!("no such route: {path}")),
        StatusCode::UNAUTHORIZED => ("UNAUTHENTICATED", text.clone()),
        StatusCode::FORBIDDEN => ("PERMISSION_DENIED", text.clone()),
        _ if status.is_server_error() => ("INTERNAL_ERROR", text.clone()),
        _ => ("INVALID_PARAMETER_VALUE", text.clone()),
    };
    let message = if message.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { message };
    let mut rewritten = protocol_error(path, status, code, message);
    for (name, value) in parts.headers.iter().filter(|(name, _)| *name == header::ALLOW) {
        rewritten.headers_mut().insert(name.clone(), value.clone());
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy::new(SocketAddr::from(([127, 0, 0, 1], 5000)), vec!["mlflow.internal".into()], vec![])
    }

    #[test]
    fn hosts_are_loopback_private_bound_or_listed() {
        let policy = policy();
        for allowed in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "10.1.2.3:5000",
            "192.168.0.7",
            "mlflow.internal:5000",
        ] {
            assert!(policy.allows_host(allowed), "{allowed}");
        }
        for refused in ["evil.example", "evil.example:5000", "8.8.8.8:5000", "127.0.0.1.evil.example"] {
            assert!(!policy.allows_host(refused), "{refused}");
        }
        assert!(AccessPolicy::new(policy.bound, vec!["*".into()], vec![]).allows_host("anything.example"));
    }

    #[test]
    fn origins_are_loopback_the_server_itself_or_listed() {
        let policy = AccessPolicy::new(policy().bound, vec![], vec!["https://*.company.com".into()]);
        assert!(policy.allows_origin("http://localhost:3000", Some("127.0.0.1:5000")));
        assert!(policy.allows_origin("http://10.0.0.5:5000", Some("10.0.0.5:5000")));
        assert!(policy.allows_origin("https://notebook.company.com", None));
        assert!(!policy.allows_origin("http://evil.example", Some("127.0.0.1:5000")));
        assert!(!policy.allows_origin("null", Some("127.0.0.1:5000")));
    }

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(matches("*.company.com", "ml.company.com"));
        assert!(matches("192.168.*", "192.168.1.10"));
        assert!(!matches("*.company.com", "company.com.evil"));
        assert!(matches("a*b*c", "aXXbYYc"));
    }
}
