//! The embedded front end: every file under `assets/` compiled into the binary (no CDN, no
//! network), served with its content type, a content-hash `ETag` (a reload that changed nothing
//! costs a 304) and a strict content-security policy: scripts and styles only from this server,
//! no inline code, no frames. Any page path under `/ui/` gets the one shell page; the
//! JavaScript router draws the page the path names.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub(crate) struct Asset {
    /// Its path under `/ui/assets/`.
    pub path: &'static str,
    /// Its content type.
    pub mime: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $mime:expr),* $(,)?) => {
        &[$(Asset { path: $path, mime: $mime, bytes: include_bytes!(concat!("../assets/", $path)) }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file the pages load. A test checks that every file under `assets/` is listed.
pub(crate) static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "app.css" => CSS,
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/dom.js" => JS,
    "js/chart.js" => JS,
    "js/format.js" => JS,
    "js/pages/overview.js" => JS,
    "js/pages/experiments.js" => JS,
    "js/pages/runs.js" => JS,
    "js/pages/run.js" => JS,
    "js/pages/compare.js" => JS,
    "js/pages/models.js" => JS,
    "js/pages/loop.js" => JS,
    "js/pages/monitoring.js" => JS,
    "js/pages/datasets.js" => JS,
    "js/pages/events.js" => JS,
    "vendor/uPlot.iife.min.js" => JS,
    "vendor/uPlot.min.css" => CSS,
    "vendor/LICENSE-uPlot" => "text/plain; charset=utf-8",
];

/// The policy every UI answer carries.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
     connect-src 'self'; frame-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS.iter().map(|asset| format!("\"{}\"", &blake3::hash(asset.bytes).to_hex()[..16])).collect()
    })
}

fn find(path: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, asset)| asset.path == path)
}

/// Headers every UI answer carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn serve(index: usize, asset: &'static Asset, request: &HeaderMap) -> Response {
    let etag = &etags()[index];
    let mut headers = HeaderMap::new();
    secure(&mut headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    (headers, asset.bytes).into_response()
}

/// `GET /ui/assets/{path}`: an embedded file, or 404.
pub(crate) async fn asset(axum::extract::Path(path): axum::extract::Path<String>, request: HeaderMap) -> Response {
    match find(&path) {
        Some((index, asset)) if path != "index.html" => serve(index, asset, &request),
        _ => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("no asset {path}"))
            .into_response(),
    }
}

/// `GET /` and `GET /ui/{page}`: the page shell; its script draws the page the path names.
pub(crate) async fn shell(request: HeaderMap) -> Response {
    match find("index.html") {
        Some((index, asset)) => serve(index, asset, &request),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /favicon.ico`: the icon, for browsers that ask before reading the page's link.
pub(crate) async fn favicon(request: HeaderMap) -> Response {
    match find("favicon.svg") {
        Some((index, asset)) => serve(index, asset, &request),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::{ASSETS, CSS, JS};

    fn files(dir: &std::path::Path, prefix: &str, into: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.path().is_dir() {
                files(&entry.path(), &format!("{name}/"), into);
            } else if !name.ends_with(".md") {
                into.push(name);
            }
        }
    }

    #[test]
    fn answers_carry_the_policy_and_an_unchanged_file_costs_a_304() {
        use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
        let (index, asset) = super::find("js/app.js").expect("the app is embedded");
        let first = super::serve(index, asset, &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let policy = first.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("text");
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe"), "{policy}");
        let etag = first.headers()[header::ETAG].clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(super::serve(index, asset, &request).status(), StatusCode::NOT_MODIFIED);
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        assert_eq!(super::serve(index, asset, &request).status(), StatusCode::OK);
    }

    #[test]
    fn every_file_under_assets_is_embedded_with_its_type() {
        let mut found = Vec::new();
        files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"), "", &mut found);
        found.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|asset| asset.path.to_string()).collect();
        listed.sort();
        assert_eq!(found, listed, "list every file under assets/ in ASSETS (and nothing else)");
        for asset in ASSETS {
            if asset.path.ends_with(".js") {
                assert_eq!(asset.mime, JS, "{}", asset.path);
            }
            if asset.path.ends_with(".css") {
                assert_eq!(asset.mime, CSS, "{}", asset.path);
            }
        }
    }
}
