//! Times a web page in headless Chromium, for the benchmarks: each repeat opens a fresh tab (no
//! cache, no storage), navigates to the URL and records, in the page's own clock from the start
//! of navigation, when the load event ended and when a readiness expression first held (checked
//! on every animation frame and DOM change by a script installed before the page's own). Prints
//! one JSON object with the medians in milliseconds.
//!
//! ```text
//! cargo run --release -p causeway-test-support --example page_timing -- \
//!     --url http://127.0.0.1:5000/ui/experiments/1 \
//!     --ready "document.querySelector('main').dataset.ready === 'runs'" [--repeats 5] [--screenshot out.png]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use causeway_test_support::browser::Browser;
use serde_json::json;

/// The watcher: records `window.__readyAt` (milliseconds since navigation start) the first time
/// the expression is true. `READY` is replaced by the expression itself (not `eval`ed: pages with
/// a strict Content-Security-Policy forbid `eval`, and a DevTools script is not bound by it).
const WATCHER: &str = "(() => {
  const ready = () => { try { return Boolean(READY); } catch (error) { return false; } };
  const check = () => {
    if (window.__readyAt === undefined && ready()) window.__readyAt = performance.now();
    if (window.__readyAt === undefined) requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
  document.addEventListener('DOMContentLoaded', () => {
    new MutationObserver(check).observe(document.documentElement, {subtree: true, childList: true, attributes: true});
  });
})();";

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        length if length % 2 == 1 => values[length / 2],
        length => (values[length / 2 - 1] + values[length / 2]) / 2.0,
    }
}

fn main() {
    let mut arguments = std::env::args().skip(1);
    let (mut url, mut ready, mut repeats, mut screenshot) = (None, None, 5_usize, None);
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().unwrap_or_else(|| fail(&format!("{argument} needs a value")));
        match argument.as_str() {
            "--url" => url = Some(value()),
            "--ready" => ready = Some(value()),
            "--repeats" => repeats = value().parse().unwrap_or_else(|_| fail("--repeats takes a number")),
            "--screenshot" => screenshot = Some(PathBuf::from(value())),
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let url = url.unwrap_or_else(|| fail("--url is required"));
    let ready = ready.unwrap_or_else(|| fail("--ready is required"));
    let browser = Browser::shared();
    let (mut loads, mut readies) = (Vec::new(), Vec::new());
    for repeat in 0..repeats {
        let page = browser.page();
        page.call("Network.enable", json!({}));
        page.call("Network.setCacheDisabled", json!({"cacheDisabled": true}));
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": WATCHER.replace("READY", &format!("({ready})"))}),
        );
        page.goto(&url);
        page.wait_for("window.__readyAt !== undefined", Duration::from_secs(120));
        let timing = page
            .evaluate("({load: performance.getEntriesByType('navigation')[0].loadEventEnd, ready: window.__readyAt})");
        loads.push(timing["load"].as_f64().unwrap_or(f64::NAN));
        readies.push(timing["ready"].as_f64().unwrap_or(f64::NAN));
        if repeat + 1 == repeats
            && let Some(path) = &screenshot
        {
            page.screenshot(path);
        }
    }
    println!(
        "{}",
        json!({"url": url, "repeats": repeats, "load_ms": median(&mut loads), "ready_ms": median(&mut readies), "ready_all_ms": readies})
    );
}

fn fail(message: &str) -> ! {
    eprintln!("page_timing: {message}");
    std::process::exit(2);
}
