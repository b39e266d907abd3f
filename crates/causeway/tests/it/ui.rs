//! The web UI in a real headless Chromium, against the built binary on a copy of the fraud demo's
//! project with MLflow-logged runs added: sign-in with a token, every page drawn without console
//! errors (a screenshot of each is written for people to look at), the runs list filtered, sorted
//! and paged, a long metric history drawn downsampled, a promotion made in the browser seen by
//! the CLI and the audit log, and a read-only token shown no buttons and refused by the API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use causeway_test_support::browser::{Browser, Page, js_string};
use serde_json::{Value, json};

use crate::support::{Server, fraud_demo, ok};

const WAIT: Duration = Duration::from_secs(30);

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the project") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

fn screenshots() -> PathBuf {
    std::env::var_os("CAUSEWAY_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots"))
}

fn token(dir: &Path, name: &str, scope: &str) -> String {
    ok(&["token", "create", "--name", name, "--scope", scope, "--dir", dir.to_str().expect("utf-8")]).trim().to_string()
}

/// A request with a bearer token, through curl-free plain HTTP.
fn authorized(server: &Server, secret: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&server.address).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let body = body.to_string();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {secret}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.address,
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, rest) = response.split_once("\r\n\r\n").expect("a response");
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("a status");
    let text = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        crate::support::dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Logs `count` runs into a new experiment: `params.model` alternates between gbdt and
/// logistic, `metrics.rmse` falls with the index.
fn log_runs(server: &Server, secret: &str, count: usize) -> (String, Vec<String>) {
    let (status, created) =
        authorized(server, secret, "POST", "/api/2.0/mlflow/experiments/create", &json!({"name": "ui-runs"}));
    assert_eq!(status, 200, "{created}");
    let experiment = created["experiment_id"].as_str().expect("an id").to_string();
    let mut ids = Vec::new();
    for index in 0..count {
        let (status, run) = authorized(
            server,
            secret,
            "POST",
            "/api/2.0/mlflow/runs/create",
            &json!({"experiment_id": experiment, "run_name": format!("trial-{index:03}"), "start_time": 1_700_000_000_000i64 + index as i64 * 1000}),
        );
        assert_eq!(status, 200, "{run}");
        let id = run["run"]["info"]["run_id"].as_str().expect("a run id").to_string();
        let model = if index % 2 == 0 { "gbdt" } else { "logistic" };
        let (status, answer) = authorized(
            server,
            secret,
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            &json!({"run_id": id,
                "params": [{"key": "model", "value": model}, {"key": "depth", "value": (index % 7).to_string()}],
                "metrics": [{"key": "rmse", "value": 1.0 - index as f64 / count as f64, "timestamp": 1_700_000_000_000i64, "step": 0},
                            {"key": "loss", "value": 2.0 / (1.0 + index as f64), "timestamp": 1_700_000_000_000i64, "step": 0}]}),
        );
        assert_eq!(status, 200, "{answer}");
        ids.push(id);
    }
    (experiment, ids)
}

/// Logs a `points`-long history of `training_loss` to `run`.
fn log_history(server: &Server, secret: &str, run: &str, points: usize) {
    for start in (0..points).step_by(1000) {
        let metrics: Vec<Value> = (start..(start + 1000).min(points))
            .map(|step| {
                let noise = ((step * 7919) % 101) as f64 / 1000.0;
                json!({"key": "training_loss", "value": 1.0 / (1.0 + step as f64 / 1000.0) + noise, "timestamp": 1_700_000_000_000i64 + step as i64, "step": step})
            })
            .collect();
        let (status, answer) = authorized(
            server,
            secret,
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            &json!({"run_id": run, "metrics": metrics}),
        );
        assert_eq!(status, 200, "{answer}");
    }
}

fn ready(page: &Page<'_>, name: &str) {
    page.wait_for(&format!("document.querySelector('main').dataset.ready === {}", js_string(name)), WAIT);
}

/// Opens `path`, waits for the page `name` to be drawn, checks the console stayed clean and
/// writes a screenshot.
fn visit(page: &Page<'_>, base: &str, path: &str, name: &str, shot: &str) {
    page.clear_console_errors();
    page.goto(&format!("{base}{path}"));
    ready(page, name);
    let errors = page.console_errors();
    assert!(errors.is_empty(), "{path} logged console errors: {errors:?}");
    page.screenshot(&screenshots().join(format!("{shot}.png")));
}

#[test]
fn the_web_ui_works_in_a_real_browser() {
    let demo = fraud_demo();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("project");
    copy_tree(&demo.dir, &dir);
    let dir_text = dir.to_str().expect("utf-8");
    let admin = token(&dir, "ui-admin", "admin");
    let reader = token(&dir, "ui-reader", "read");
    let server =
        Server::spawn_with(&["server", "--dir", dir_text, "--port", "0", "--no-loop", "--require-tokens"], &[]);
    let base = format!("http://{}", server.address);

    // Without a token the data is refused, but the page (the login form) loads.
    let (status, _) = server.request("GET", "/ui/api/overview", None);
    assert_eq!(status, 401);
    let (status, shell) = server.request("GET", "/ui/models", None);
    assert_eq!(status, 200);
    assert!(shell.contains("/ui/assets/js/app.js"), "{shell}");

    let (experiment, runs) = log_runs(&server, &admin, 120);
    log_history(&server, &admin, &runs[0], 100_000);

    let browser = Browser::shared();
    let page = browser.page();
    page.goto(&format!("{base}/"));
    ready(&page, "login");
    page.fill("#token", "cw_not_a_token");
    page.click("[data-action=sign-in]");
    page.wait_for("document.getElementById('login-error').textContent.includes('unknown or revoked')", WAIT);
    page.screenshot(&screenshots().join("login.png"));
    page.fill("#token", &admin);
    page.click("[data-action=sign-in]");
    ready(&page, "overview");
    assert!(page.count("[data-model=fraud]") == 1, "the overview lists the demo's model");
    page.screenshot(&screenshots().join("overview.png"));

    // Every page, drawn from the store, with a clean console.
    let datasets: Value = {
        let (status, answer) = authorized(&server, &admin, "GET", "/ui/api/datasets", &json!({}));
        assert_eq!(status, 200, "{answer}");
        answer
    };
    let dataset = &datasets["datasets"][0];
    let dataset_path = format!(
        "/ui/datasets/{}/{}",
        dataset["name"].as_str().expect("a dataset"),
        dataset["versions"][0]["version"].as_str().expect("a version")
    );
    let demo_run = {
        let (_, answer) = authorized(&server, &admin, "GET", "/ui/api/models/fraud/versions/1", &json!({}));
        answer["record"]["run_id"].as_str().expect("the version's run").to_string()
    };
    for (path, name, shot) in [
        ("/ui/experiments".to_string(), "experiments", "experiments"),
        (format!("/ui/experiments/{experiment}"), "runs", "runs"),
        (format!("/ui/runs/{}", runs[1]), "run", "run"),
        (format!("/ui/runs/{demo_run}"), "run", "run-trained"),
        (format!("/ui/compare?runs={},{},{}", runs[1], runs[2], runs[3]), "compare", "compare"),
        ("/ui/models".to_string(), "models", "models"),
        ("/ui/models/fraud".to_string(), "model", "model"),
        ("/ui/models/fraud/versions/1".to_string(), "version", "version"),
        ("/ui/loop".to_string(), "loop-list", "loop-list"),
        ("/ui/loop/fraud".to_string(), "loop", "loop"),
        ("/ui/monitoring".to_string(), "monitoring-list", "monitoring-list"),
        ("/ui/monitoring/fraud".to_string(), "monitoring", "monitoring"),
        ("/ui/datasets".to_string(), "datasets", "datasets"),
        (dataset_path, "dataset", "dataset"),
        ("/ui/events".to_string(), "events", "events"),
        ("/ui/no-such-page".to_string(), "not-found", "not-found"),
    ] {
        visit(&page, &base, &path, name, shot);
    }
    page.goto(&format!("{base}/ui/runs/{demo_run}"));
    ready(&page, "run");
    let reproducibility = page.text("#reproducibility");
    assert!(reproducibility.contains("transactions@") && reproducibility.contains("causeway "), "{reproducibility}");
    page.goto(&format!("{base}/ui/events"));
    ready(&page, "events");
    assert!(page.count("#events tbody tr") > 10, "the audit log lists the demo's events");
    page.goto(&format!("{base}/ui/monitoring/fraud"));
    ready(&page, "monitoring");
    assert!(page.count("#drift-chart .uplot") == 1, "the drift chart is drawn");
    page.clear_console_errors();
    page.evaluate(
        "const statistic = document.querySelector('[aria-label=\"drift statistic\"]'); \
         statistic.value = 'ks'; statistic.dispatchEvent(new Event('change')); true",
    );
    page.wait_for(
        "document.getElementById('drift-chart').dataset.statistic === 'ks' && document.querySelector('#drift-chart .uplot') !== null",
        WAIT,
    );
    assert!(page.console_errors().is_empty(), "{:?}", page.console_errors());

    // The runs list: filter (as the API would), page, sort, choose a column; the URL keeps it all.
    page.goto(&format!("{base}/ui/experiments/{experiment}"));
    ready(&page, "runs");
    assert_eq!(page.count("#runs tbody tr"), 50, "a full first page");
    page.fill("#filter", "params.model = 'gbdt' and metrics.rmse < 0.5");
    page.click("[data-action=search]");
    page.wait_for("location.search.includes('filter=')", WAIT);
    ready(&page, "runs");
    let (_, expected) = authorized(
        &server,
        &admin,
        "POST",
        "/api/2.0/mlflow/runs/search",
        &json!({"experiment_ids": [experiment], "filter": "params.model = 'gbdt' and metrics.rmse < 0.5", "max_results": 50}),
    );
    let expected_rows = expected["runs"].as_array().map_or(0, Vec::len);
    assert_eq!(expected_rows, 29, "gbdt runs are the even indices; rmse < 0.5 from index 61 on: 62, 64, …, 118");
    assert_eq!(page.count("#runs tbody tr"), expected_rows);
    page.fill("#filter", "params.model = 'gbdt' and metrics.rmse <");
    page.click("[data-action=search]");
    page.wait_for("document.getElementById('filter-error').textContent.length > 0", WAIT);
    // The browser logs the 400 itself; nothing else may be logged (no exception escaped the page).
    let unexpected: Vec<String> =
        page.console_errors().into_iter().filter(|error| !error.contains("status of 400")).collect();
    assert!(unexpected.is_empty(), "a bad filter is shown, not thrown: {unexpected:?}");
    assert!(
        page.text("#filter-error").contains("rmse"),
        "the error names what is wrong: {}",
        page.text("#filter-error")
    );
    page.goto(&format!("{base}/ui/experiments/{experiment}"));
    ready(&page, "runs");
    page.click("[data-action=next]");
    page.wait_for("document.querySelector('[data-field=shown]').textContent === 'runs 51–100'", WAIT);
    page.click("[data-action=next]");
    page.wait_for("document.querySelector('[data-field=shown]').textContent === 'runs 101–120'", WAIT);
    assert_eq!(page.count("#runs tbody tr"), 20);
    page.click("[data-action=previous]");
    page.wait_for("document.querySelector('[data-field=shown]').textContent === 'runs 51–100'", WAIT);
    page.click("th[data-sort='metrics.rmse']");
    page.wait_for("location.search.includes('order=metrics.rmse+ASC')", WAIT);
    page.wait_for("document.querySelector('#runs tbody tr td:nth-child(2)').textContent === 'trial-119'", WAIT);
    page.evaluate("location.reload(); true");
    ready(&page, "runs");
    page.wait_for("document.querySelector('#runs tbody tr td:nth-child(2)').textContent === 'trial-119'", WAIT);
    let columns_before = page.count("#runs thead th");
    page.click("[data-action=columns]");
    page.click("input[data-column='params.model']");
    page.wait_for(&format!("document.querySelectorAll('#runs thead th').length !== {columns_before}"), WAIT);

    // A 100,000-point history draws downsampled.
    page.clear_console_errors();
    page.goto(&format!("{base}/ui/runs/{}?metric=training_loss", runs[0]));
    ready(&page, "run");
    page.wait_for("document.querySelector('[data-chart=training_loss]').dataset.drawn === 'true'", WAIT);
    let returned: u64 = page
        .evaluate("document.querySelector('[data-chart=training_loss]').dataset.returned")
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("returned");
    let total: u64 = page
        .evaluate("document.querySelector('[data-chart=training_loss]').dataset.total")
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("total");
    assert_eq!(total, 100_000);
    assert!(
        !page.text("#reproducibility").contains("causeway"),
        "an MLflow-logged run claims no Causeway environment: {}",
        page.text("#reproducibility")
    );
    assert!(returned <= 3_000 && returned > 100, "{returned} points drawn");
    assert!(page.console_errors().is_empty(), "{:?}", page.console_errors());
    page.screenshot(&screenshots().join("run-history.png"));

    // A promotion in the browser: the gates' verdicts first, then the confirmation.
    let versions: Value = authorized(&server, &admin, "GET", "/ui/api/models/fraud", &json!({})).1;
    let champion = versions["aliases"]["champion"].as_u64().expect("a champion");
    let other = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|version| version["record"]["version"].as_u64())
        .find(|version| *version != champion)
        .expect("another version");
    page.goto(&format!("{base}/ui/models/fraud"));
    ready(&page, "model");
    page.click(&format!("[data-action=promote][data-version='{other}']"));
    page.wait_for("document.querySelector('[data-dialog=promote] #gate-verdicts, [data-dialog=promote] p') !== null && document.querySelector('[data-action=promote-confirm]') !== null", WAIT);
    page.screenshot(&screenshots().join("promote.png"));
    if page.count("#promote-force") == 1 {
        page.click("#promote-force");
    }
    page.fill("#promote-reason", "checked in the browser");
    page.click("[data-action=promote-confirm]");
    page.wait_for(&format!("document.querySelector(\"tr[data-version='{other}'] .badge.good\") !== null"), WAIT);
    let models = ok(&["models", "--dir", dir_text]);
    let champion_line = models.lines().find(|line| line.contains("champion")).unwrap_or_default().to_string();
    assert!(champion_line.contains(&other.to_string()), "the CLI sees v{other} as champion:\n{models}");
    let events = ok(&["events", "--dir", dir_text]);
    assert!(
        events
            .lines()
            .any(|line| line.contains("ui-admin") && line.contains("from the web UI: checked in the browser")),
        "the audit log names the token and the reason:\n{events}"
    );

    // A read-only token: no buttons, and the API refuses it anyway.
    page.click("[data-action=sign-out]");
    ready(&page, "login");
    page.fill("#token", &reader);
    page.click("[data-action=sign-in]");
    // Signing in again lands on the page that was open.
    ready(&page, "model");
    assert_eq!(page.count("[data-action=promote], [data-action=rollback]"), 0, "a reader sees no promote button");
    page.goto(&format!("{base}/ui/loop/fraud"));
    ready(&page, "loop");
    assert_eq!(page.count("[data-action=pause], [data-action=retrain]"), 0, "a reader cannot steer the loop");
    let (status, refused) = authorized(
        &server,
        &reader,
        "POST",
        "/ui/api/models/fraud/promote",
        &json!({"version": champion, "force": true}),
    );
    assert_eq!(status, 403, "{refused}");
    assert!(page.console_errors().is_empty(), "{:?}", page.console_errors());
    drop(page);

    // `causeway ui` beside the running server: it serves no models, so it leaves the online
    // store to the server, and reads the same stores.
    let alone = Server::spawn_with(&["ui", "--dir", dir_text, "--port", "0"], &[]);
    assert!(alone.readiness.starts_with("web UI of "), "{}", alone.readiness);
    let (status, overview) = alone.json("GET", "/ui/api/overview", &Value::Null);
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["models"][0]["champion"].as_u64(), Some(other), "it sees the promotion");
    let (status, _) = alone.request("GET", "/v2/health/ready", None);
    assert_eq!(status, 404, "no data plane in `causeway ui`");
    alone.terminate();
    server.terminate();
}

/// What a new user logs with the official MLflow client — scikit-learn autologging on the
/// breast-cancer table, a search with child runs, a loss curve by epoch, dataset inputs, HTML,
/// JSON and text artifacts (`tests/mlflow/ui_trial.py`) — draws in the browser: the runs list,
/// the parent with its children, the curve, the inputs, the artifacts and their previews, and
/// the comparison of the trials.
#[test]
fn runs_the_official_client_logged_render_in_the_browser() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("project");
    std::fs::create_dir_all(&dir).expect("a bare directory, as `mlflow server` starts in");
    let dir_text = dir.to_str().expect("utf-8");
    let server = Server::spawn_with(&["server", "--dir", dir_text, "--port", "0", "--no-loop"], &[]);
    let base = format!("http://{}", server.address);
    let output = std::process::Command::new(causeway_test_support::python())
        .arg(causeway_test_support::repository_root().join("tests/mlflow/ui_trial.py"))
        .env("MLFLOW_TRACKING_URI", &base)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("the trial script runs");
    assert!(output.status.success(), "ui_trial.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let logged: Value =
        serde_json::from_slice(output.stdout.trim_ascii().rsplit(|byte| *byte == b'\n').next().unwrap_or_default())
            .expect("the script prints its runs as JSON");
    let experiment = logged["experiment"].as_str().expect("an experiment");
    let parent = logged["runs"]["parent"].as_str().expect("the search's run");
    let epochs = logged["runs"]["epochs"].as_str().expect("the epochs run");
    let children: Vec<&str> =
        logged["runs"]["children"].as_array().expect("children").iter().filter_map(Value::as_str).collect();
    assert_eq!(children.len(), 3);

    let browser = Browser::shared();
    let page = browser.page();
    visit(&page, &base, &format!("/ui/experiments/{experiment}"), "runs", "trial-runs");
    assert_eq!(page.count("#runs tbody tr"), 5, "the search, its three trials and the epochs run");
    visit(&page, &base, &format!("/ui/runs/{}", children[1]), "run", "trial-child");
    let params = page.text("#params");
    assert!(params.contains("logisticregression__C") && params.contains("0.1"), "autologged parameters: {params}");
    assert!(page.text("#metrics").contains("training_roc_auc"), "autologged metrics: {}", page.text("#metrics"));
    let inputs = page.text("#inputs");
    assert!(inputs.contains("breast-cancer") && inputs.contains("training"), "the dataset input: {inputs}");
    visit(&page, &base, &format!("/ui/runs/{parent}"), "run", "trial-parent");
    assert_eq!(page.count("#children tbody tr"), 3, "the search's trials are its children");
    assert!(page.text("#children").contains("holdout_auc"), "the children's metrics: {}", page.text("#children"));
    visit(&page, &base, &format!("/ui/runs/{epochs}?metric=holdout_log_loss"), "run", "trial-epochs");
    page.wait_for("document.querySelector('[data-chart=holdout_log_loss]').dataset.total === '40'", WAIT);
    page.click("#artifacts li > button.link:not([data-artifact])");
    page.wait_for("document.querySelector(\"[data-artifact='reports/holdout.json']\") !== null", WAIT);
    page.click("[data-artifact='reports/holdout.json']");
    page.wait_for("document.querySelector('#artifact-preview pre') !== null", WAIT);
    assert!(
        page.text("#artifact-preview").contains("\"rows\": 143"),
        "pretty JSON: {}",
        page.text("#artifact-preview")
    );
    page.click("[data-artifact='reports/holdout.html']");
    page.wait_for("document.querySelector('#artifact-preview iframe') !== null", WAIT);
    page.screenshot(&screenshots().join("trial-html-preview.png"));
    assert!(page.console_errors().is_empty(), "{:?}", page.console_errors());
    // The frame's address is signed and short-lived, and the report keeps its inline styles
    // (a `blob:` document would inherit the page's policy and lose them).
    let (status, issued) = server.json(
        "GET",
        &format!("/ui/api/artifact-preview?run_id={epochs}&path=reports/holdout.html"),
        &Value::Null,
    );
    assert_eq!(status, 200, "{issued}");
    let address = issued["url"].as_str().expect("an address").to_string();
    page.goto(&format!("{base}{address}"));
    page.wait_for("document.getElementById('title') !== null", WAIT);
    assert_eq!(
        page.evaluate("getComputedStyle(document.body).color").as_str(),
        Some("rgb(20, 60, 120)"),
        "the report's own style applies"
    );
    let (status, refused) = server.request("GET", &format!("{address}0"), None);
    assert_eq!(status, 403, "a changed ticket is refused: {refused}");
    let compared = children.join(",");
    visit(&page, &base, &format!("/ui/compare?runs={compared}"), "compare", "trial-compare");
    assert!(page.text("main").contains("logisticregression__C"), "the differing parameter is shown");
    let every_parameter = page.count("#compare-params tbody tr");
    page.click("[data-control=only-differing]");
    // The estimator, its C, and the pipeline's steps, which print the estimator.
    page.wait_for("document.querySelectorAll('#compare-params tbody tr').length === 3", WAIT);
    assert!(every_parameter > 20, "autologging logs every parameter: {every_parameter}");
    assert_eq!(page.count("#compare-params tbody tr.differs"), 3);
    drop(page);
    server.terminate();
}
