//! The connection loop on real sockets: slow or silent connections are closed after the header
//! timeout, connections beyond the cap wait instead of exhausting descriptors, and a shutdown
//! lets the request in flight finish.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use causeway_server::connections::{ConnectionLimits, serve};
use tokio::sync::{Notify, mpsc, oneshot};

/// A guard against a test hanging forever; no assertion waits for it to pass.
const GUARD: Duration = Duration::from_secs(20);

async fn start(
    app: Router,
    limits: ConnectionLimits,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        serve(listener, app, limits, async move {
            let _ = stopped.await;
        })
        .await
        .expect("served");
    });
    (address, stop, served)
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    stream
}

/// Sends a whole request and reads its whole answer (the body is `ok`), leaving the connection
/// open.
fn request_ok(stream: &mut TcpStream) {
    stream.write_all(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !answer.ends_with(b"\r\n\r\nok") {
        let read = stream.read(&mut buffer).expect("an answer");
        assert!(read > 0, "closed before answering: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

/// Reads until the server closes the connection (an error counts as closed: a reset).
fn read_until_closed(stream: &mut TcpStream) {
    let mut buffer = [0_u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {GUARD:?}")
            }
            Err(_) => return,
        }
    }
}

fn ok_app() -> Router {
    Router::new().route("/ok", get(|| async { "ok" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_silence_and_idle_keep_alives_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    let limits = ConnectionLimits { max_connections: 8, header_timeout: timeout, drain_timeout: GUARD };
    let (address, _stop, _served) = start(ok_app(), limits).await;
    let closed_after = tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let mut half = connect(address);
        half.write_all(b"GET /ok HTTP/1.1\r\nHost: te").expect("write");
        let mut silent = connect(address);
        let mut idle = connect(address);
        request_ok(&mut idle);
        let mut times = Vec::new();
        for stream in [&mut half, &mut silent, &mut idle] {
            read_until_closed(stream);
            times.push(began.elapsed());
        }
        times
    })
    .await
    .expect("client");
    for (which, elapsed) in ["half-sent header", "silent", "idle keep-alive"].iter().zip(closed_after) {
        assert!(elapsed >= timeout, "the {which} connection was closed after {elapsed:?}, before the timeout");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_and_are_served_when_one_closes() {
    let limits = ConnectionLimits { max_connections: 2, header_timeout: GUARD, drain_timeout: GUARD };
    let (address, _stop, _served) = start(ok_app(), limits).await;
    tokio::task::spawn_blocking(move || {
        // Two connections take the two places (each answered, so each was accepted).
        let mut first = connect(address);
        request_ok(&mut first);
        let mut second = connect(address);
        request_ok(&mut second);
        // A third waits in the backlog: its request is not answered while both are held...
        let mut third = connect(address);
        third.write_all(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n").expect("write");
        third.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        let mut buffer = [0_u8; 64];
        match third.read(&mut buffer) {
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("the third connection was served beyond the cap: {other:?}"),
        }
        // ...and is, once one of them closes.
        drop(first);
        third.set_read_timeout(Some(GUARD)).expect("timeout");
        let read = third.read(&mut buffer).expect("an answer once a place is free");
        assert!(buffer[..read].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buffer[..read]));
    })
    .await
    .expect("client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_the_request_in_flight_finish_and_then_refuses_connections() {
    let (entered, mut handler_entered) = mpsc::channel::<()>(1);
    let release = Arc::new(Notify::new());
    let released = release.clone();
    let app = Router::new().route(
        "/slow",
        get(move || {
            let (entered, released) = (entered.clone(), released.clone());
            async move {
                let _ = entered.send(()).await;
                released.notified().await;
                "finished"
            }
        }),
    );
    let limits = ConnectionLimits { max_connections: 8, header_timeout: GUARD, drain_timeout: GUARD };
    let (address, stop, served) = start(app, limits).await;
    let client = tokio::task::spawn_blocking(move || {
        let mut stream = connect(address);
        stream.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n").expect("write");
        let mut answer = Vec::new();
        read_until_closed_into(&mut stream, &mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    handler_entered.recv().await.expect("the request reached its handler");
    stop.send(()).expect("stop");
    release.notify_one();
    let answer = client.await.expect("client");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("finished"), "{answer}");
    tokio::time::timeout(GUARD, served).await.expect("the server stopped").expect("served");
    assert!(TcpStream::connect(address).is_err(), "a connection was accepted after the shutdown");
}

/// Reads into `answer` until the server closes the connection.
fn read_until_closed_into(stream: &mut TcpStream, answer: &mut Vec<u8>) {
    let mut buffer = [0_u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
}
