//! The CDP driver against a real headless Chromium and a page served from loopback.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, reason = "a failing fixture is a failing test")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use causeway_test_support::browser::{Browser, js_string};

const START: &str = "<!doctype html><html><head><title>start</title></head><body>\
    <button id=\"go\" onclick=\"document.title = 'clicked'\">Go</button>\
    <form onsubmit=\"event.preventDefault(); document.title = 'submitted: ' + \
    document.getElementById('who').value\">\
    <input id=\"who\" value=\"old\"></form>\
    <script>localStorage.setItem('seen', 'yes')</script></body></html>";
const BOOM: &str = "<!doctype html><html><body><p>boom page</p><script>throw new Error('boom')</script></body></html>";

/// Serves `/` and `/boom` on a loopback port (a thread per connection: the browser keeps idle
/// connections open) and returns `http://127.0.0.1:PORT`.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
                let mut request = String::new();
                if reader.read_line(&mut request).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let (status, body) = match request.split_whitespace().nth(1) {
                    Some("/") => ("200 OK", START),
                    Some("/boom") => ("200 OK", BOOM),
                    _ => ("404 Not Found", ""),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    base
}

#[test]
fn drives_a_real_page() {
    let base = serve();
    let browser = Browser::shared();
    {
        let page = browser.page();
        page.goto(&format!("{base}/"));
        assert_eq!(page.text("#go"), "Go");
        assert_eq!(page.count("button"), 1);
        assert_eq!(page.count("#missing"), 0);

        page.click("#go");
        page.wait_for("document.title === 'clicked'", Duration::from_secs(5));

        page.fill("#who", "Ada \"Lovelace\"");
        assert_eq!(page.value("#who"), "Ada \"Lovelace\"");
        let read_back = page.evaluate(&format!("document.querySelector({}).value", js_string("#who")));
        assert_eq!(read_back, serde_json::json!("Ada \"Lovelace\""));
        page.press_enter("#who");
        page.wait_for("document.title === 'submitted: Ada \"Lovelace\"'", Duration::from_secs(5));

        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("shots/start.png");
        page.screenshot(&path);
        let png = std::fs::read(&path).expect("the screenshot is written");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:?}", &png[..png.len().min(16)]);
        assert!(png.len() > 1000, "a 1280x800 screenshot of {} bytes", png.len());

        assert_eq!(page.console_errors(), Vec::<String>::new());
        page.goto(&format!("{base}/boom"));
        assert_eq!(page.text("p"), "boom page");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !page.console_errors().iter().any(|error| error.contains("boom")) {
            assert!(Instant::now() < deadline, "no boom among {:?}", page.console_errors());
            std::thread::sleep(Duration::from_millis(50));
        }
        page.clear_console_errors();
        assert_eq!(page.console_errors(), Vec::<String>::new());
    }
    // A new page has storage of its own: the first page's localStorage is gone.
    let page = browser.page();
    page.goto(&format!("{base}/boom"));
    assert_eq!(page.evaluate("localStorage.getItem('seen')"), serde_json::Value::Null);
}
