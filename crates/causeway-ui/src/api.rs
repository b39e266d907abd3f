//! The UI's JSON routes under `/ui/api/`. Each decodes its parameters, calls one library
//! operation on a blocking thread (the stores are synchronous), and encodes the answer; actions
//! name the caller the server authenticated, so the audit log says who clicked.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use causeway_loop::machine::Command;
use causeway_loop::{controller, gates, status, timeline};
use causeway_server::auth::Caller;
use causeway_store::{EventFilter, Scope};
use causeway_types::{CHAMPION, EventKind};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::downsample::{lttb, smooth};
use crate::{Error, UiState};

type Answer = Result<Json<Value>, Error>;

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.map_err(|error| Error::Cancelled(error.to_string()))?
}

/// The caller the server's authentication attached (`anonymous` with every right on a server that
/// checks no tokens).
fn caller(extension: Option<Extension<Caller>>) -> Caller {
    extension.map_or_else(|| Caller { name: "anonymous".into(), scope: Scope::Admin }, |Extension(caller)| caller)
}

fn encode(value: impl serde::Serialize) -> Answer {
    serde_json::to_value(value).map(Json).map_err(|error| Error::Invalid(format!("cannot encode the answer: {error}")))
}

/// `GET /ui/api/whoami`: who the browser's token is and what it may do (which buttons show).
pub(crate) async fn whoami(caller_extension: Option<Extension<Caller>>) -> Answer {
    let caller = caller(caller_extension);
    encode(json!({
        "name": caller.name,
        "scope": caller.scope.as_str(),
        "can_write": caller.scope >= Scope::Write,
        "can_admin": caller.scope >= Scope::Admin,
    }))
}

/// Any other `/ui/api/` path.
pub(crate) async fn unknown(Path(rest): Path<String>) -> Response {
    Error::NotFound(format!("the UI has no API route `/ui/api/{rest}`")).into_response()
}

/// Every registered model's status (the loop's view when `causeway.toml` configures it, its
/// aliases otherwise), and the control plane running the loop: one read of the loop's status.
fn model_statuses(state: &UiState, now: i64) -> Result<(Vec<Value>, Option<status::Leader>), Error> {
    let project = &state.project;
    let (mut looped, leader) = match status::status(project, None, now) {
        Ok(status) => (status.models.into_iter().map(|model| (model.model.clone(), model)).collect(), status.leader),
        Err(_) => (BTreeMap::new(), None),
    };
    let mut models = Vec::new();
    for name in project.meta.model_names()? {
        let versions = project.meta.model_versions(&name)?;
        let aliases = project.meta.aliases(&name)?;
        let loop_status = looped.remove(&name);
        let champion = aliases.get(CHAMPION).copied();
        let champion_record = versions.iter().find(|version| Some(version.version) == champion);
        models.push(json!({
            "model": name,
            "versions": versions.len(),
            "latest": versions.iter().map(|version| version.version).max(),
            "aliases": aliases,
            "champion": champion,
            "champion_flavor": champion_record.map(|record| record.flavor.clone()),
            "champion_metrics": champion_record.map(|record| record.metrics.clone()),
            "loop": loop_status,
        }));
    }
    Ok((models, leader))
}

/// `GET /ui/api/overview`: every model with its champion, challenger, stage, evidence, firing
/// alerts and last decision, the leader, and the newest events.
pub(crate) async fn overview(State(state): State<UiState>) -> Answer {
    blocking(move || {
        let now = state.clock.now_ms();
        let (models, leader) = model_statuses(&state, now)?;
        let events = state.project.meta.events_page(&EventFilter::default(), None, 20)?;
        let firing = state.project.meta.events_page(
            &EventFilter { kind: Some(EventKind::Alert), ..EventFilter::default() },
            None,
            5,
        )?;
        encode(json!({"at_ms": now, "leader": leader, "models": models, "events": events, "recent_alerts": firing}))
    })
    .await
}

/// `GET /ui/api/models`: the registered models.
pub(crate) async fn models(State(state): State<UiState>) -> Answer {
    blocking(move || {
        let now = state.clock.now_ms();
        encode(json!({"models": model_statuses(&state, now)?.0}))
    })
    .await
}

/// `GET /ui/api/models/{model}`: its versions (with aliases and holdout metrics), its loop
/// status and its audit trail.
pub(crate) async fn model(State(state): State<UiState>, Path(model): Path<String>) -> Answer {
    blocking(move || {
        let project = &state.project;
        let versions = project.meta.model_versions(&model)?;
        if versions.is_empty() {
            return Err(Error::NotFound(format!("no registered model `{model}`")));
        }
        let aliases = project.meta.aliases(&model)?;
        let loop_status = status::status(project, Some(&model), state.clock.now_ms())
            .ok()
            .and_then(|status| status.models.into_iter().next());
        let history = project.meta.events_page(
            &EventFilter { kind: Some(EventKind::Audit), subject: Some(model.clone()), ..EventFilter::default() },
            None,
            50,
        )?;
        let versions: Vec<Value> = versions
            .iter()
            .rev()
            .map(|record| {
                let named: Vec<&String> =
                    aliases.iter().filter(|(_, version)| **version == record.version).map(|(alias, _)| alias).collect();
                json!({"record": record, "aliases": named})
            })
            .collect();
        encode(
            json!({"model": model, "aliases": aliases, "versions": versions, "loop": loop_status, "history": history}),
        )
    })
    .await
}

/// `GET /ui/api/models/{model}/versions/{version}`: one version with its run (what reproduces
/// it), its card and its lineage.
pub(crate) async fn version(State(state): State<UiState>, Path((model, version)): Path<(String, u32)>) -> Answer {
    blocking(move || {
        let project = &state.project;
        let record = project.meta.model_version(&model, version)?;
        let run = project.meta.run(&record.run_id).ok();
        let card = causeway_loop::card::model_card(project, &model, version).ok().map(|card| card.blocks);
        let aliases: Vec<String> = project
            .meta
            .aliases(&model)?
            .into_iter()
            .filter(|(_, aliased)| *aliased == version)
            .map(|(alias, _)| alias)
            .collect();
        let dataset = record.dataset.split_once('@').and_then(|(name, version)| {
            project.meta.dataset(name, version).ok().map(|dataset| json!({"name": name, "version": dataset.version}))
        });
        encode(json!({"record": record, "run": run, "card": card, "aliases": aliases, "dataset": dataset}))
    })
    .await
}

/// `GET /ui/api/models/{model}/versions/{version}/gates`: the `[loop.gates]` verdicts a
/// promotion would meet, without promoting (shown before the confirm button).
pub(crate) async fn gates(State(state): State<UiState>, Path((model, version)): Path<(String, u32)>) -> Answer {
    blocking(move || {
        let report = gates::check_version(&state.project, &model, version)?;
        let champion = state.project.meta.alias(&model, CHAMPION)?;
        encode(json!({"passed": report.passed(), "report": report, "champion": champion}))
    })
    .await
}

/// What a promotion from the browser asks for.
#[derive(Deserialize)]
pub(crate) struct PromoteRequest {
    version: u32,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    reason: String,
    /// The champion the person saw; the promotion is refused (409) when it moved meanwhile.
    #[serde(default)]
    expected_champion: Option<u32>,
}

fn reason_from_browser(reason: &str) -> String {
    let reason = reason.trim();
    if reason.is_empty() { "from the web UI".into() } else { format!("from the web UI: {reason}") }
}

/// `POST /ui/api/models/{model}/promote`: the gates, then the champion alias (as `causeway
/// promote` does), audited with the caller's name.
pub(crate) async fn promote(
    State(state): State<UiState>,
    caller_extension: Option<Extension<Caller>>,
    Path(model): Path<String>,
    Json(request): Json<PromoteRequest>,
) -> Answer {
    let caller = caller(caller_extension);
    blocking(move || {
        let project = &state.project;
        let champion = project.meta.alias(&model, CHAMPION)?;
        if request.expected_champion.is_some() && request.expected_champion != champion {
            return Err(Error::Conflict(format!(
                "the champion of `{model}` changed to version {} since the page was read; reload and check the gates again",
                champion.map_or_else(|| "none".into(), |version| version.to_string())
            )));
        }
        let promotion = gates::promote(
            project,
            &model,
            request.version,
            request.force,
            &caller.name,
            &reason_from_browser(&request.reason),
            state.clock.now_ms(),
        )?;
        encode(json!({"promoted": promotion.promoted, "report": promotion.report, "passed": promotion.report.passed()}))
    })
    .await
}

/// What a rollback from the browser says.
#[derive(Deserialize, Default)]
pub(crate) struct ReasonRequest {
    #[serde(default)]
    reason: String,
}

/// `POST /ui/api/models/{model}/rollback`: the champion back to the version before.
pub(crate) async fn rollback(
    State(state): State<UiState>,
    caller_extension: Option<Extension<Caller>>,
    Path(model): Path<String>,
    body: Option<Json<ReasonRequest>>,
) -> Answer {
    let caller = caller(caller_extension);
    let reason = body.map(|Json(body)| body.reason).unwrap_or_default();
    blocking(move || {
        let version =
            gates::rollback(&state.project, &model, &caller.name, &reason_from_browser(&reason), state.clock.now_ms())?;
        encode(json!({"champion": version}))
    })
    .await
}

/// `GET /ui/api/loop/{model}`: the loop's status for the model and its timeline (triggers,
/// retrains, shadow, canary, promotions, rollbacks, alerts).
pub(crate) async fn loop_status(State(state): State<UiState>, Path(model): Path<String>) -> Answer {
    blocking(move || {
        let project = &state.project;
        let status = status::status(project, Some(&model), state.clock.now_ms())?;
        // Everything about the model (loop steps, audit, alerts); data events name datasets.
        let filter = EventFilter { subject: Some(model.clone()), ..EventFilter::default() };
        let timeline = project.meta.events_page(&filter, None, 200)?;
        let gates = project.config.scoped(&model).map(|config| config.rollout.gates).ok();
        encode(json!({
            "leader": status.leader,
            "status": status.models.into_iter().next(),
            "timeline": timeline,
            "gates": gates,
        }))
    })
    .await
}

/// `POST /ui/api/loop/{model}/{pause|resume|retrain}`: a command to the loop, as `causeway loop`
/// sends it (queued for the control plane when one holds the lease).
pub(crate) async fn loop_command(
    State(state): State<UiState>,
    caller_extension: Option<Extension<Caller>>,
    Path((model, action)): Path<(String, String)>,
) -> Answer {
    let by = caller(caller_extension).name;
    let command = match action.as_str() {
        "pause" => Command::Pause { by },
        "resume" => Command::Resume { by },
        "retrain" => Command::Retrain { by },
        other => return Err(Error::Invalid(format!("unknown loop action `{other}`: use pause, resume or retrain"))),
    };
    blocking(move || {
        state.project.config.loop_models(Some(&model)).map_err(|error| Error::Invalid(error.to_string()))?;
        let applied = controller::send_command(&state.project, &model, &command, state.clock.now_ms())?;
        encode(json!({"applied": applied}))
    })
    .await
}

/// The range of a series request.
#[derive(Deserialize, Default)]
pub(crate) struct RangeQuery {
    from: Option<i64>,
    to: Option<i64>,
    points: Option<usize>,
}

/// `GET /ui/api/monitoring/{model}?from=&to=&points=`: drift per feature, score, live metrics,
/// latency and errors per version over time, and the alerts' history.
pub(crate) async fn monitoring(
    State(state): State<UiState>,
    Path(model): Path<String>,
    Query(range): Query<RangeQuery>,
) -> Answer {
    blocking(move || {
        let project = &state.project;
        if project.meta.model_versions(&model)?.is_empty() {
            return Err(Error::NotFound(format!("no registered model `{model}`")));
        }
        let series = timeline::monitor_series(project, &model, range.from, range.to, range.points.unwrap_or(200))?;
        let mut alerts = Vec::new();
        for kind in [EventKind::Alert, EventKind::Resolved] {
            let filter = EventFilter { kind: Some(kind), subject: Some(model.clone()), ..EventFilter::default() };
            alerts.extend(project.meta.events_page(&filter, None, 200)?);
        }
        alerts.sort_by_key(|event| std::cmp::Reverse(event.id));
        encode(json!({"series": series, "alerts": alerts}))
    })
    .await
}

/// `GET /ui/api/datasets`: every dataset with its versions, newest first.
pub(crate) async fn datasets(State(state): State<UiState>) -> Answer {
    blocking(move || {
        let mut by_name: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut all = state.project.meta.all_datasets()?;
        all.sort_by_key(|dataset| std::cmp::Reverse(dataset.created_ms));
        for dataset in all {
            by_name.entry(dataset.name.clone()).or_default().push(json!({
                "version": dataset.version,
                "rows": dataset.rows,
                "columns": dataset.schema.fields.len(),
                "source": dataset.source,
                "created_ms": dataset.created_ms,
            }));
        }
        let datasets: Vec<Value> =
            by_name.into_iter().map(|(name, versions)| json!({"name": name, "versions": versions})).collect();
        encode(json!({"datasets": datasets}))
    })
    .await
}

/// `GET /ui/api/datasets/{name}/{version}`: the version's schema, profile and validation events.
pub(crate) async fn dataset(State(state): State<UiState>, Path((name, version)): Path<(String, String)>) -> Answer {
    blocking(move || {
        let project = &state.project;
        let record = project.meta.dataset(&name, &version)?;
        let profile: Option<Value> =
            project.blobs.get(&record.profile_key).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let filter = EventFilter { kind: Some(EventKind::Data), subject: Some(name.clone()), ..EventFilter::default() };
        let events = project.meta.events_page(&filter, None, 100)?;
        encode(json!({"dataset": record, "profile": profile, "events": events}))
    })
    .await
}

/// The audit log's filters.
#[derive(Deserialize, Default)]
pub(crate) struct EventsQuery {
    kind: Option<String>,
    subject: Option<String>,
    actor: Option<String>,
    q: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

fn nonempty(text: Option<String>) -> Option<String> {
    text.map(|text| text.trim().to_string()).filter(|text| !text.is_empty())
}

/// `GET /ui/api/events?kind=&subject=&actor=&q=&before=&limit=`: a page of the audit log, newest
/// first, with the id to ask for the next page.
pub(crate) async fn events(State(state): State<UiState>, Query(query): Query<EventsQuery>) -> Answer {
    let kind = match nonempty(query.kind) {
        Some(kind) => Some(EventKind::parse(&kind).ok_or_else(|| {
            Error::Invalid(format!("unknown event kind `{kind}`: use audit, alert, resolved, loop or data"))
        })?),
        None => None,
    };
    let filter =
        EventFilter { kind, subject: nonempty(query.subject), actor: nonempty(query.actor), text: nonempty(query.q) };
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    blocking(move || {
        let mut events = state.project.meta.events_page(&filter, query.before, limit + 1)?;
        let more = events.len() > limit;
        events.truncate(limit);
        let next_before = if more { events.last().map(|event| event.id) } else { None };
        encode(json!({"events": events, "next_before": next_before}))
    })
    .await
}

/// A metric-curve request.
#[derive(Deserialize)]
pub(crate) struct SeriesQuery {
    /// Run ids, comma-separated.
    runs: String,
    key: String,
    /// `step` (default), `time` or `relative` (seconds since the run's first point).
    x: Option<String>,
    from: Option<f64>,
    to: Option<f64>,
    points: Option<usize>,
    smoothing: Option<f64>,
}

/// The most points one curve is drawn with.
const MAX_SERIES_POINTS: usize = 5_000;

/// `GET /ui/api/series?runs=a,b&key=loss&x=step&from=&to=&points=&smoothing=`: each run's
/// history of one metric between `from` and `to` (on the x axis), smoothed at full resolution
/// when asked, then downsampled by LTTB to `points` — so a 100,000-point history draws as fast as
/// a short one, and zooming in asks again for the finer points.
pub(crate) async fn series(State(state): State<UiState>, Query(query): Query<SeriesQuery>) -> Answer {
    let runs: Vec<String> =
        query.runs.split(',').map(str::trim).filter(|run| !run.is_empty()).map(str::to_string).collect();
    if runs.is_empty() || runs.len() > 10 {
        return Err(Error::Invalid("pass 1 to 10 run ids in `runs`, comma-separated".into()));
    }
    let axis = query.x.unwrap_or_else(|| "step".into());
    if !matches!(axis.as_str(), "step" | "time" | "relative") {
        return Err(Error::Invalid(format!("unknown x axis `{axis}`: use step, time or relative")));
    }
    let points = query.points.unwrap_or(1_200).clamp(10, MAX_SERIES_POINTS);
    let smoothing = query.smoothing.unwrap_or(0.0);
    if !(0.0..1.0).contains(&smoothing) {
        return Err(Error::Invalid(format!("smoothing must be in [0, 1), not {smoothing}")));
    }
    blocking(move || {
        let mut answer = Vec::new();
        let (mut total, mut returned) = (0usize, 0usize);
        for run in runs {
            let history = state.project.meta.metric_history(&run, &query.key)?;
            let first = history.iter().map(|point| point.timestamp).min().unwrap_or(0);
            let x_of = |point: &causeway_store::MetricPoint| match axis.as_str() {
                "time" => point.timestamp as f64,
                "relative" => (point.timestamp - first) as f64 / 1000.0,
                _ => point.step as f64,
            };
            let mut pairs: Vec<(f64, f64)> = history
                .iter()
                .map(|point| (x_of(point), point.value))
                .filter(|(x, _)| query.from.is_none_or(|from| *x >= from) && query.to.is_none_or(|to| *x <= to))
                .collect();
            pairs.sort_by(|left, right| left.0.total_cmp(&right.0));
            total += pairs.len();
            let xs: Vec<f64> = pairs.iter().map(|pair| pair.0).collect();
            let ys: Vec<f64> = pairs.iter().map(|pair| pair.1).collect();
            let smoothed = (smoothing > 0.0).then(|| smooth(&ys, smoothing));
            let picked = lttb(&xs, &ys, points);
            returned += picked.len();
            let finite = |value: f64| if value.is_finite() { json!(value) } else { Value::Null };
            answer.push(json!({
                "run_id": run,
                "x": picked.iter().map(|&index| xs[index]).collect::<Vec<_>>(),
                "y": picked.iter().map(|&index| finite(ys[index])).collect::<Vec<_>>(),
                "smooth": smoothed.map(|smoothed| picked.iter().map(|&index| finite(smoothed[index])).collect::<Vec<_>>()),
            }));
        }
        encode(json!({"key": query.key, "x": axis, "series": answer, "total_points": total, "returned": returned}))
    })
    .await
}

/// `GET /ui/api/runs/{run_id}`: what reproduces a run Causeway trained (seed, dataset version,
/// git commit, tool version); `null` for a run an MLflow client logged.
pub(crate) async fn run(State(state): State<UiState>, Path(run_id): Path<String>) -> Answer {
    blocking(move || {
        // Runs an MLflow client logged share the table but carry no tool version.
        let record = state.project.meta.run(&run_id).ok().filter(|record| !record.tool_version.is_empty());
        encode(json!({"run": record}))
    })
    .await
}
