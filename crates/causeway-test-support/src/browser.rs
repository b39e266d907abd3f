//! A headless Chromium driven over the Chrome DevTools Protocol, with a hand-written websocket
//! client (RFC 6455) so the tests need no browser-automation crates.
//!
//! [`Browser::shared`] starts one chromium per test binary (installed by `scripts/browser.sh`);
//! [`Browser::page`] opens a tab with storage of its own. Pages take turns: a second `page()`
//! waits until the first is dropped, so never hold two in one thread.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a DevTools command may take to answer, and chromium to start.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the element helpers wait for their selector to match.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(5);

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The flags chromium runs with, besides its profile directory and first URL.
const FLAGS: &str = "--headless --no-sandbox --disable-gpu --remote-debugging-port=0 --no-first-run \
    --no-default-browser-check --disable-extensions --disable-background-networking \
    --disable-component-update --disable-sync --no-proxy-server --password-store=basic --hide-scrollbars \
    --mute-audio --lang=en-US --force-device-scale-factor=1 --window-size=1280,800";

/// Runs chromium (`"$@"`) until its stdin, a pipe from the test process, closes: when the
/// `Browser` drops, or when the test binary exits without dropping the shared one (statics never
/// drop) or dies. Then it stops chromium (TERM, KILL after 5 s) and removes the profile.
const WATCHDOG: &str = r#""$@" &
chromium=$!
while read -r _line; do :; done
exec 2>/dev/null
kill -TERM "$chromium"
waited=0
while kill -0 "$chromium" && [ "$waited" -lt 50 ]; do sleep 0.1; waited=$((waited + 1)); done
kill -KILL "$chromium"
wait "$chromium"
if [ -n "${CAUSEWAY_CHROMIUM_PROFILE:-}" ]; then rm -rf -- "$CAUSEWAY_CHROMIUM_PROFILE"; fi
"#;

/// The events of one page's session, in arrival order.
type Events = Arc<Mutex<Vec<Value>>>;

/// Locks, ignoring poison: a test that panicked while holding a lock must not fail the others.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JSON-quoted string, which is also a JavaScript string literal: for embedding selectors and
/// text into expressions.
pub fn js_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The sending half of the websocket: a clone of the socket the reader thread reads.
struct Writer {
    stream: TcpStream,
    /// The xorshift state the mask keys come from.
    state: u64,
}

impl Writer {
    /// Sends one whole (FIN) frame, masked as every client frame must be.
    fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let bytes = self.state.to_le_bytes();
        self.stream.write_all(&encode_frame(opcode, payload, [bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// The DevTools connection, shared by the callers and the reader thread.
struct Connection {
    /// All writes, one frame at a time.
    writer: Mutex<Writer>,
    /// The callers waiting for a reply, by command id.
    pending: Mutex<HashMap<u64, mpsc::Sender<Value>>>,
    /// The event buffers of the open pages, by session id.
    events: Mutex<HashMap<String, Events>>,
    /// The id of the next command.
    next_id: AtomicU64,
    /// Set by the reader thread once the connection is gone.
    closed: AtomicBool,
}

impl Connection {
    /// Sends a command (to a page's session, or to the browser) and waits for its result.
    fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut request = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            request["sessionId"] = Value::from(session);
        }
        let (sender, reply) = mpsc::channel();
        lock(&self.pending).insert(id, sender);
        if self.closed.load(Ordering::SeqCst) {
            lock(&self.pending).remove(&id);
            return Err("the connection to chromium is closed".to_string());
        }
        if let Err(error) = lock(&self.writer).send(OP_TEXT, request.to_string().as_bytes()) {
            lock(&self.pending).remove(&id);
            return Err(format!("sending to chromium failed: {error}"));
        }
        let reply = match reply.recv_timeout(CALL_TIMEOUT) {
            Ok(reply) => reply,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                lock(&self.pending).remove(&id);
                return Err(format!("no reply within {CALL_TIMEOUT:?}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("chromium closed the connection".to_string()),
        };
        if let Some(error) = reply.get("error") {
            let message = error["message"].as_str().map_or_else(|| error.to_string(), str::to_string);
            return Err(match error.get("data") {
                Some(data) => format!("{message} ({data})"),
                None => message,
            });
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Hands one message to the caller waiting for it, or to its page's event buffer.
    fn dispatch(&self, text: &[u8]) {
        let Ok(message) = serde_json::from_slice::<Value>(text) else { return };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            if let Some(sender) = lock(&self.pending).remove(&id) {
                let _ = sender.send(message);
            }
        } else if let Some(session) = message.get("sessionId").and_then(Value::as_str) {
            let buffer = lock(&self.events).get(session).cloned();
            if let Some(buffer) = buffer {
                lock(&buffer).push(message);
            }
        }
    }

    /// The reader thread: every message until the connection ends, then wakes all waiters.
    fn read_messages(&self, mut reader: BufReader<TcpStream>) {
        let mut pong = |payload: &[u8]| {
            let _ = lock(&self.writer).send(OP_PONG, payload);
        };
        while let Ok(Some(message)) = read_message(&mut reader, &mut pong) {
            self.dispatch(&message);
        }
        let _ = lock(&self.writer).send(OP_CLOSE, &[]);
        self.closed.store(true, Ordering::SeqCst);
        // Dropping the senders wakes every waiting caller with a disconnect.
        lock(&self.pending).clear();
    }
}

/// One frame off the wire, unmasked.
#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A whole (FIN) frame with a 7-, 16- or 64-bit length, its payload masked with `mask`.
fn encode_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    let length = payload.len();
    if length < 126 {
        frame.push(0x80 | length as u8);
    } else if let Ok(short) = u16::try_from(length) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&short.to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(length as u64).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(index, byte)| byte ^ mask[index % 4]));
    frame
}

/// Reads one frame, masked (as tests send) or not (as servers send).
fn read_frame(reader: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head)?;
    let length = match head[1] & 0x7f {
        126 => {
            let mut bytes = [0u8; 2];
            reader.read_exact(&mut bytes)?;
            u64::from(u16::from_be_bytes(bytes))
        }
        127 => {
            let mut bytes = [0u8; 8];
            reader.read_exact(&mut bytes)?;
            u64::from_be_bytes(bytes)
        }
        short => u64::from(short),
    };
    let mut mask = None;
    if head[1] & 0x80 != 0 {
        let mut key = [0u8; 4];
        reader.read_exact(&mut key)?;
        mask = Some(key);
    }
    let length = usize::try_from(length).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame too long"))?;
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload)?;
    if let Some(key) = mask {
        for (index, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[index % 4];
        }
    }
    Ok(Frame { fin: head[0] & 0x80 != 0, opcode: head[0] & 0x0f, payload })
}

/// Reads frames until a whole data message is in (continuations joined), answering pings with
/// `pong`; `None` once the server closes.
fn read_message(reader: &mut impl Read, pong: &mut impl FnMut(&[u8])) -> io::Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    loop {
        let frame = read_frame(reader)?;
        match frame.opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY => {
                message.extend_from_slice(&frame.payload);
                if frame.fin {
                    return Ok(Some(message));
                }
            }
            OP_PING => pong(&frame.payload),
            OP_CLOSE => return Ok(None),
            _ => {}
        }
    }
}

/// Decodes standard base64 (with padding; line breaks ignored).
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut decoded = Vec::with_capacity(text.len() / 4 * 3);
    let (mut buffer, mut bits, mut symbols, mut padding) = (0u32, 0u32, 0usize, 0usize);
    for (index, byte) in text.bytes().enumerate() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                symbols += 1;
                continue;
            }
            b'\r' | b'\n' => continue,
            _ => return Err(format!("invalid base64 byte {byte:#04x} at {index}")),
        };
        if padding > 0 {
            return Err(format!("base64 data after padding at {index}"));
        }
        symbols += 1;
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            decoded.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if !symbols.is_multiple_of(4) || padding > 2 {
        return Err(format!("base64 of {symbols} symbols with {padding} padding is malformed"));
    }
    Ok(decoded)
}

/// Connects the websocket at `url` (`ws://HOST:PORT/PATH`): the sending socket and the reader.
fn connect(url: &str) -> (TcpStream, BufReader<TcpStream>) {
    let rest = url.strip_prefix("ws://").unwrap_or_else(|| panic!("not a ws:// address: {url}"));
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let stream = TcpStream::connect(host).unwrap_or_else(|error| panic!("connecting to {url}: {error}"));
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(CALL_TIMEOUT)).expect("a read timeout");
    let mut writer = stream.try_clone().expect("clone the socket");
    write!(
        writer,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap_or_else(|error| panic!("sending the websocket upgrade to {url}: {error}"));
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap_or_else(|error| panic!("reading the upgrade answer of {url}: {error}"));
    assert!(status.split_whitespace().nth(1) == Some("101"), "{url} refused the websocket upgrade: {status}");
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).unwrap_or_else(|error| panic!("reading headers of {url}: {error}"));
        if read == 0 || line == "\r\n" {
            break;
        }
    }
    // Messages (events) may be minutes apart: the reader blocks without a deadline from now on.
    writer.set_read_timeout(None).expect("no read timeout");
    (writer, reader)
}

/// A headless chromium and the DevTools connection to it. It stops when dropped, or (for
/// [`Browser::shared`]) when the test binary exits.
pub struct Browser {
    connection: Arc<Connection>,
    /// Held by the open page: one page at a time (the machine has two cores).
    turn: Mutex<()>,
    /// The watchdog shell running chromium; closing its stdin stops chromium.
    child: Child,
    /// Chromium's profile directory.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// The chromium of this test binary, started on first use.
    pub fn shared() -> &'static Browser {
        static SHARED: OnceLock<Browser> = OnceLock::new();
        SHARED.get_or_init(Browser::launch)
    }

    /// Starts a chromium of its own (installed by `scripts/browser.sh` if needed) and connects.
    pub fn launch() -> Browser {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/browser.sh");
        let setup = Command::new("bash").arg(script).output().expect("scripts/browser.sh runs");
        assert!(setup.status.success(), "scripts/browser.sh failed:\n{}", String::from_utf8_lossy(&setup.stderr));
        let stdout = String::from_utf8_lossy(&setup.stdout).to_string();
        let chromium = stdout.lines().next_back().map(str::trim).filter(|line| !line.is_empty());
        let chromium = chromium.expect("scripts/browser.sh prints chromium's path").to_string();
        let profile = tempfile::Builder::new().prefix("causeway-chromium-").tempdir().expect("a profile directory");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("causeway-chromium")
            .arg(&chromium)
            .args(FLAGS.split_whitespace())
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .env("CAUSEWAY_CHROMIUM_PROFILE", profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("{chromium} starts: {error}"));
        let stderr = child.stderr.take().expect("chromium's stderr");
        let (line_sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after the address so chromium never blocks on a full pipe.
            let mut reported = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !reported {
                    reported = line.contains("DevTools listening on ");
                    let _ = line_sender.send(line);
                }
            }
        });
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut said = Vec::new();
        let url = loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some((_, url)) = line.split_once("DevTools listening on ") {
                        break url.trim().to_string();
                    }
                    said.push(line);
                }
                Err(error) => {
                    panic!("{chromium} did not report its DevTools address ({error}); it said:\n{}", said.join("\n"))
                }
            }
        };
        let (stream, reader) = connect(&url);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0x2545_f491_4f6c_dd1d);
        let connection = Arc::new(Connection {
            writer: Mutex::new(Writer { stream, state: seed | 1 }),
            pending: Mutex::new(HashMap::new()),
            events: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });
        let reading = Arc::clone(&connection);
        std::thread::spawn(move || reading.read_messages(reader));
        Browser { connection, turn: Mutex::new(()), child, _profile: profile }
    }

    /// Sends a DevTools command, to a page's session or (`None`) to the browser, and returns its
    /// `result`; panics with the method and the error if it fails or takes over 30 s.
    pub fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.connection.call(session, method, params).unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }

    /// A new tab at `about:blank`, 1280×800, with cookies and storage of its own. Waits while
    /// another page of this browser is open.
    pub fn page(&self) -> Page<'_> {
        let turn = lock(&self.turn);
        let created = self.call(None, "Target.createBrowserContext", json!({}));
        let context = created["browserContextId"].as_str().expect("a browser context id").to_string();
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank", "browserContextId": context}));
        let target = target["targetId"].as_str().expect("a target id").to_string();
        let attached = self.call(None, "Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        let session = attached["sessionId"].as_str().expect("a session id").to_string();
        let events = Events::default();
        lock(&self.connection.events).insert(session.clone(), Arc::clone(&events));
        let page = Page { browser: self, session, context, events, _turn: turn };
        for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(method, json!({}));
        }
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
        );
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = lock(&self.connection.writer).stream.shutdown(Shutdown::Both);
        // The watchdog stops chromium once its stdin closes, and exits when chromium has.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// One tab in a browser context of its own, disposed of (with its storage) when dropped. Holds
/// the browser's turn, so other pages wait.
pub struct Page<'a> {
    browser: &'a Browser,
    session: String,
    context: String,
    /// This session's events: console calls, exceptions, log entries.
    events: Events,
    _turn: MutexGuard<'a, ()>,
}

impl Page<'_> {
    /// Sends a DevTools command to this page's session and returns its `result`.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params)
    }

    /// Navigates to `url` and waits (30 s) until the new document has loaded.
    pub fn goto(&self, url: &str) {
        // A mark on the old document: its absence tells the new document has replaced it.
        let _ = self.try_evaluate("window.__causewayLeaving = true");
        let navigation = self.call("Page.navigate", json!({"url": url}));
        if let Some(error) = navigation.get("errorText").and_then(Value::as_str) {
            panic!("navigating to {url} failed: {error}");
        }
        let loaded = if navigation.get("loaderId").is_some() {
            "!window.__causewayLeaving && document.readyState === 'complete'"
        } else {
            "document.readyState === 'complete'"
        };
        self.wait_for(loaded, CALL_TIMEOUT);
    }

    /// Evaluates `js` (awaiting a promise) and returns its value as JSON; `Err` with the
    /// exception's text if it throws.
    fn try_evaluate(&self, js: &str) -> Result<Value, String> {
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        let reply = self.browser.connection.call(Some(&self.session), "Runtime.evaluate", params)?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(exception_text(details));
        }
        Ok(reply["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `js` (awaiting a promise) and returns its value as JSON (`null` for
    /// `undefined`); panics with the exception if it throws.
    pub fn evaluate(&self, js: &str) -> Value {
        self.try_evaluate(js).unwrap_or_else(|error| panic!("evaluating `{js}` threw: {error}"))
    }

    /// Polls `js` every 50 ms until it is `true`; on timeout, panics with the page's address,
    /// text and console errors.
    pub fn wait_for(&self, js: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let last = loop {
            let last = match self.try_evaluate(js) {
                Ok(Value::Bool(true)) => return,
                Ok(other) => format!("it was {other}"),
                Err(error) => format!("it threw {error}"),
            };
            if Instant::now() >= deadline {
                break last;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let state = self
            .try_evaluate("[location.href, document.body ? document.body.innerText.slice(0, 2000) : '(no body)']")
            .unwrap_or_else(|error| json!([format!("(unknown: {error})"), ""]));
        panic!(
            "waited {timeout:?} for `{js}` to be true; {last}\npage: {}\ntext:\n{}\nconsole errors: {:#?}",
            state[0].as_str().unwrap_or_default(),
            state[1].as_str().unwrap_or_default(),
            self.console_errors()
        );
    }

    /// `document.querySelector(selector)`, once it matches (waiting 5 s).
    fn element(&self, selector: &str) -> String {
        let element = format!("document.querySelector({})", js_string(selector));
        self.wait_for(&format!("{element} !== null"), ELEMENT_TIMEOUT);
        element
    }

    /// Clicks the element `selector` matches, once it exists.
    pub fn click(&self, selector: &str) {
        let element = self.element(selector);
        self.evaluate(&format!("{element}.click()"));
    }

    /// Replaces the text of the field `selector` matches with `text`, typed as the user would.
    pub fn fill(&self, selector: &str, text: &str) {
        let element = self.element(selector);
        self.evaluate(&format!(
            "(() => {{ const field = {element}; field.focus(); \
             if ('value' in field) {{ field.value = ''; }} else {{ field.textContent = ''; }} \
             field.dispatchEvent(new Event('input', {{ bubbles: true }})); }})()"
        ));
        if !text.is_empty() {
            self.call("Input.insertText", json!({"text": text}));
        }
    }

    /// Focuses the element `selector` matches and presses Enter (submitting its form).
    pub fn press_enter(&self, selector: &str) {
        let element = self.element(selector);
        self.evaluate(&format!("{element}.focus()"));
        let key = json!({"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13});
        let mut down = key.clone();
        down["type"] = json!("keyDown");
        down["text"] = json!("\r");
        self.call("Input.dispatchKeyEvent", down);
        let mut up = key;
        up["type"] = json!("keyUp");
        self.call("Input.dispatchKeyEvent", up);
    }

    /// The `innerText` of the element `selector` matches, once it exists.
    pub fn text(&self, selector: &str) -> String {
        let element = self.element(selector);
        match self.evaluate(&format!("{element}.innerText")) {
            Value::String(text) => text,
            other => panic!("the innerText of {selector} is {other}"),
        }
    }

    /// The `value` of the form field `selector` matches, once it exists.
    pub fn value(&self, selector: &str) -> String {
        let element = self.element(selector);
        match self.evaluate(&format!("{element}.value")) {
            Value::String(value) => value,
            other => panic!("the value of {selector} is {other}"),
        }
    }

    /// How many elements `selector` matches now.
    pub fn count(&self, selector: &str) -> usize {
        let count = self.evaluate(&format!("document.querySelectorAll({}).length", js_string(selector)));
        count.as_u64().and_then(|count| usize::try_from(count).ok()).expect("a count")
    }

    /// Writes a PNG of the viewport to `path`, making its directory.
    pub fn screenshot(&self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = shot["data"].as_str().expect("screenshot data");
        let png = base64_decode(data).unwrap_or_else(|error| panic!("the screenshot's base64: {error}"));
        if let Some(directory) = path.parent() {
            std::fs::create_dir_all(directory).unwrap_or_else(|error| panic!("{}: {error}", directory.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    }

    /// Everything that went wrong since the page opened (or was cleared): uncaught exceptions,
    /// `console.error` and failed `console.assert` calls, and the browser's error log (failed
    /// loads, CSP violations) except the favicon the browser asks for on its own.
    pub fn console_errors(&self) -> Vec<String> {
        lock(&self.events).iter().filter_map(console_error).collect()
    }

    /// Forgets the console errors (and other events) so far.
    pub fn clear_console_errors(&self) {
        lock(&self.events).clear();
    }
}

impl Drop for Page<'_> {
    fn drop(&mut self) {
        // Not `call`: a panic here, while a failing test unwinds, would abort the test binary.
        let params = json!({"browserContextId": self.context});
        let _ = self.browser.connection.call(None, "Target.disposeBrowserContext", params);
        lock(&self.browser.connection.events).remove(&self.session);
    }
}

/// The message of a thrown exception's details.
fn exception_text(details: &Value) -> String {
    let exception = &details["exception"];
    if let Some(description) = exception["description"].as_str() {
        return description.to_string();
    }
    match exception.get("value") {
        Some(Value::String(value)) => value.clone(),
        Some(value) => value.to_string(),
        None => details["text"].as_str().map_or_else(|| details.to_string(), str::to_string),
    }
}

/// A console argument as text: its value, else its description.
fn remote_object_text(object: &Value) -> String {
    match (object.get("value"), object["description"].as_str()) {
        (Some(Value::String(value)), _) => value.clone(),
        (Some(value), _) => value.to_string(),
        (None, Some(description)) => description.to_string(),
        (None, None) => object["type"].as_str().unwrap_or("?").to_string(),
    }
}

/// The error an event reports, if it reports one.
fn console_error(event: &Value) -> Option<String> {
    let params = &event["params"];
    match event["method"].as_str()? {
        "Runtime.exceptionThrown" => Some(exception_text(&params["exceptionDetails"])),
        "Runtime.consoleAPICalled" if matches!(params["type"].as_str(), Some("error" | "assert")) => {
            let args = params["args"].as_array().map(Vec::as_slice).unwrap_or_default();
            Some(args.iter().map(remote_object_text).collect::<Vec<_>>().join(" "))
        }
        "Log.entryAdded" if params["entry"]["level"].as_str() == Some("error") => {
            let text = params["entry"]["text"].as_str().unwrap_or_default();
            let url = params["entry"]["url"].as_str().unwrap_or_default();
            if url.ends_with("/favicon.ico") {
                None
            } else if url.is_empty() {
                Some(text.to_string())
            } else {
                Some(format!("{text} ({url})"))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut text = String::new();
        for chunk in bytes.chunks(3) {
            let word = chunk
                .iter()
                .enumerate()
                .fold(0u32, |word, (index, &byte)| word | (u32::from(byte) << (16 - 8 * index)));
            for index in 0..4 {
                if index <= chunk.len() {
                    text.push(char::from(ALPHABET[((word >> (18 - 6 * index)) & 63) as usize]));
                } else {
                    text.push('=');
                }
            }
        }
        text
    }

    #[test]
    fn base64_decodes_the_rfc_4648_vectors() {
        for (text, expected) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(base64_decode(text).unwrap(), expected.as_bytes(), "{text}");
        }
        assert_eq!(base64_decode("Zm9v\r\nYmFy").unwrap(), b"foobar");
    }

    #[test]
    fn base64_round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for length in [0, 1, 2, 3, 254, 255, 256, 1000] {
            assert_eq!(base64_decode(&encode(&bytes[..length])).unwrap(), &bytes[..length]);
        }
    }

    #[test]
    fn base64_rejects_malformed_input() {
        for text in ["Zg=", "Zm9v!", "Zg==Zg==", "Z===", "Zm9"] {
            assert!(base64_decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn frames_round_trip_with_every_length_encoding() {
        for (length, header) in [(5usize, 2usize), (200, 4), (70000, 10)] {
            let payload: Vec<u8> = (0..length).map(|index| (index * 7 % 251) as u8).collect();
            let frame = encode_frame(OP_TEXT, &payload, [0x12, 0x34, 0x56, 0x78]);
            assert_eq!(frame.len(), header + 4 + length);
            assert_eq!(frame[0], 0x81);
            assert_ne!(frame[1] & 0x80, 0, "client frames are masked");
            assert_ne!(&frame[header + 4..], &payload[..], "the payload is masked on the wire");
            let decoded = read_frame(&mut &frame[..]).unwrap();
            assert!(decoded.fin);
            assert_eq!(decoded.opcode, OP_TEXT);
            assert_eq!(decoded.payload, payload);
        }
    }

    #[test]
    fn messages_join_continuations_and_answer_pings() {
        let mut wire = vec![0x01, 3, b'h', b'e', b'l', 0x89, 1, b'p', 0x80, 2, b'l', b'o'];
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        wire.extend(long);
        wire.extend([0x88, 0]);
        let mut pings = Vec::new();
        let mut reader = &wire[..];
        let mut pong = |payload: &[u8]| pings.push(payload.to_vec());
        assert_eq!(read_message(&mut reader, &mut pong).unwrap().unwrap(), b"hello");
        assert_eq!(read_message(&mut reader, &mut pong).unwrap().unwrap(), vec![b'x'; 256]);
        assert_eq!(read_message(&mut reader, &mut pong).unwrap(), None);
        assert!(read_message(&mut reader, &mut pong).is_err(), "nothing after the close");
        assert_eq!(pings, vec![b"p".to_vec()]);
    }

    #[test]
    fn console_errors_come_from_exceptions_console_calls_and_the_log() {
        let events = [
            json!({"method": "Runtime.exceptionThrown", "params": {"exceptionDetails": {
                "text": "Uncaught", "exception": {"description": "Error: boom"}}}}),
            json!({"method": "Runtime.consoleAPICalled", "params": {
                "type": "error", "args": [{"type": "string", "value": "bad"}, {"type": "number", "value": 1}]}}),
            json!({"method": "Runtime.consoleAPICalled", "params": {
                "type": "log", "args": [{"type": "string", "value": "fine"}]}}),
            json!({"method": "Log.entryAdded", "params": {"entry": {
                "level": "error", "text": "Failed to load resource", "url": "http://x/a.js"}}}),
            json!({"method": "Log.entryAdded", "params": {"entry": {
                "level": "error", "text": "Failed to load resource", "url": "http://x/favicon.ico"}}}),
        ];
        let errors: Vec<String> = events.iter().filter_map(console_error).collect();
        assert_eq!(errors, ["Error: boom", "bad 1", "Failed to load resource (http://x/a.js)"]);
        assert_eq!(js_string("a\"b"), r#""a\"b""#);
    }
}
