//! The tracking server under concurrent writers and under `kill -9`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use causeway_store::MetaStore;
use serde_json::{Value, json};

use crate::support::{Server, run};

fn project() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("project");
    assert!(run(&["init", "--dir", dir.to_str().expect("utf-8")]).status.success());
    (root, dir)
}

fn create_run(server: &Server, name: &str) -> String {
    let (status, created) =
        server.json("POST", "/api/2.0/mlflow/runs/create", &json!({"experiment_id": "0", "run_name": name}));
    assert_eq!(status, 200, "{created}");
    created["run"]["info"]["run_id"].as_str().expect("run id").to_string()
}

#[test]
fn thirty_two_concurrent_clients_lose_nothing() {
    let (_root, dir) = project();
    let server = Arc::new(Server::start_control_plane(&dir));
    const CLIENTS: usize = 32;
    const BATCHES: usize = 20;
    const METRICS: usize = 25;
    let handles: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let server = server.clone();
            thread::spawn(move || {
                let run_id = create_run(&server, &format!("client-{client}"));
                for batch in 0..BATCHES {
                    let metrics: Vec<Value> = (0..METRICS)
                        .map(|index| json!({"key": "loss", "value": (batch * METRICS + index) as f64, "timestamp": 1, "step": batch * METRICS + index}))
                        .collect();
                    let (status, answer) = server.json("POST", "/api/2.0/mlflow/runs/log-batch", &json!({"run_id": run_id, "metrics": metrics}));
                    assert_eq!(status, 200, "{answer}");
                }
                run_id
            })
        })
        .collect();
    let run_ids: Vec<String> = handles.into_iter().map(|handle| handle.join().expect("client thread")).collect();
    for run_id in run_ids {
        let (status, history) = server.json(
            "GET",
            &format!("/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss"),
            &Value::Null,
        );
        assert_eq!(status, 200);
        let steps: Vec<u64> =
            history["metrics"].as_array().expect("metrics").iter().filter_map(|point| point["step"].as_u64()).collect();
        assert_eq!(
            steps,
            (0..(BATCHES * METRICS) as u64).collect::<Vec<_>>(),
            "run {run_id} lost or reordered metrics"
        );
    }
}

#[test]
fn kill_dash_nine_during_writes_leaves_a_consistent_store_with_every_acknowledged_write() {
    let (_root, dir) = project();
    let mut server = Server::start_control_plane(&dir);
    const WRITERS: usize = 8;
    let run_ids: Vec<String> = (0..WRITERS).map(|writer| create_run(&server, &format!("writer-{writer}"))).collect();
    let acknowledged: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let address = server.address.clone();
    let handles: Vec<_> = run_ids
        .iter()
        .enumerate()
        .map(|(writer, run_id)| {
            let (acknowledged, total, stop, run_id, address) =
                (acknowledged.clone(), total.clone(), stop.clone(), run_id.clone(), address.clone());
            thread::spawn(move || {
                let client = crate::support::Client { address };
                let mut step = 0u64;
                while !stop.load(Ordering::SeqCst) && step < 100_000 {
                    let body =
                        json!({"run_id": run_id, "key": "m", "value": step as f64, "timestamp": 1, "step": step});
                    match client.try_json("POST", "/api/2.0/mlflow/runs/log-metric", &body) {
                        Some((200, _)) => {
                            step += 1;
                            acknowledged[writer].store(step, Ordering::SeqCst);
                            total.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    // Kill once enough writes went through: a readiness condition, not a sleep. If every writer
    // stopped before that (the server failed), stop waiting and let the checks below report it.
    while total.load(Ordering::SeqCst) < 1_500 && handles.iter().any(|handle| !handle.is_finished()) {
        std::hint::spin_loop();
        thread::yield_now();
    }
    assert!(total.load(Ordering::SeqCst) >= 1_500, "the writers stopped early: the server failed before the kill");
    server.kill();
    stop.store(true, Ordering::SeqCst);
    for handle in handles {
        handle.join().expect("writer thread");
    }
    let store = MetaStore::open(&dir.join(".causeway/meta.db")).expect("the store reopens after kill -9");
    assert_eq!(store.integrity_check().expect("integrity check"), "ok");
    for (writer, run_id) in run_ids.iter().enumerate() {
        let history = store.metric_history(run_id, "m").expect("history");
        let acknowledged = acknowledged[writer].load(Ordering::SeqCst) as usize;
        assert!(
            history.len() >= acknowledged,
            "writer {writer}: {} stored < {acknowledged} acknowledged",
            history.len()
        );
        let steps: Vec<i64> = history.iter().map(|point| point.step).collect();
        assert_eq!(steps, (0..history.len() as i64).collect::<Vec<_>>(), "writer {writer}: a gap or a duplicate");
    }
}
