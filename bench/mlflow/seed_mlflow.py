"""Fills an MLflow tracking database directly through SQL with the same runs that bench.py's
`populate` creates one REST call at a time, so a benchmark can hold 100,000 runs without
spending half an hour creating them (MLflow's runs/create + runs/log-batch is ~20 ms a run).

    python bench/mlflow/seed_mlflow.py --db URL --runs N [--histories N --points P]

URL is an SQLAlchemy URL: sqlite:////tmp/x/mlflow.db or postgresql://postgres@127.0.0.1:5432/db
(a bare postgresql:// is read as postgresql+psycopg2://, the driver requirements.txt pins; give
`mlflow server` the +psycopg2 form, since SQLAlchemy 2.1 reads a bare one as psycopg 3).
The experiment id is printed on stdout, progress on stderr.

What each run holds is what MLflow 3.x's SqlAlchemyStore.create_run and log_batch write for

    runs/create    {"experiment_id": experiment, "start_time": 1_700_000_000_000 + index}
    runs/log-batch params  model = "gbdt" if index % 2 == 0 else "linear", depth = str(index % 10)
                   metrics rmse = rng.random(), auc = 1 - rmse   (timestamp 1, step 0)
                   tags    team = "risk"

with rng = random.Random(7) drawn once per run in index order: a generated run name (also
stored as the `mlflow.runName` tag), an empty user id and source fields, status RUNNING,
lifecycle 'active', and the artifact URI `<experiment artifact location>/<run id>/artifacts`.
`latest_metrics` holds, per run and key, the point MLflow would keep: the greatest
(step, timestamp, value). With histories=N, points=P the first N runs also get a metric `loss`
of P points (step 0..P-1).

The schema is made by MLflow itself (`mlflow db upgrade`) and the experiment through MLflow's
own SqlAlchemyStore, so the default experiment, workspace column and artifact location are what
a `mlflow server --artifacts-destination ...` would write. Only the runs go in through plain
executemany inserts, one transaction per chunk.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import time
import uuid

import sqlalchemy
from mlflow.entities import LifecycleStage, RunStatus, SourceType
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.name_utils import _generate_random_name  # what create_run names runs with

# What `mlflow server --artifacts-destination DIR` uses as its default artifact root (it serves
# artifacts itself), so experiments are at mlflow-artifacts:/<id>.
SERVER_ARTIFACT_ROOT = "mlflow-artifacts:/"
# bench.py's start times and the history timestamps count from here.
BASE_TIME = 1_700_000_000_000
# Runs per transaction at most: ~9 rows each, so a chunk is ~45,000 rows.
CHUNK_RUNS = 5_000
# The database that fresh_postgres_database connects to in order to drop and create others.
POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def with_driver(db_url):
    """db_url with PostgreSQL's driver made explicit: SQLAlchemy 2.1 reads a bare postgresql://
    as psycopg 3, but the driver requirements.txt pins (and MLflow supports) is psycopg2."""
    url = sqlalchemy.engine.make_url(db_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)


def mlflow_executable():
    """The `mlflow` command installed next to this Python (the bench venv's)."""
    return os.path.join(os.path.dirname(sys.executable), "mlflow")


def create_schema(db_url):
    """Has MLflow create (or bring up to date) its tracking schema in the database at db_url."""
    upgrade = subprocess.run([mlflow_executable(), "db", "upgrade", db_url], capture_output=True, text=True)
    if upgrade.returncode != 0:
        raise RuntimeError(f"mlflow db upgrade failed ({upgrade.returncode}): {upgrade.stderr[-2000:]}")


def create_experiment(db_url, experiment_name, artifact_root):
    """Creates the experiment through MLflow's own store, as experiments/create would; returns
    its id. The store also creates the default experiment 0, as the server does on start."""
    store = SqlAlchemyStore(db_url, artifact_root)
    try:
        return store.create_experiment(experiment_name)
    finally:
        store.engine.dispose()
        SqlAlchemyStore._engine_map.pop(db_url, None)


def latest_point(points):
    """The point MLflow keeps in latest_metrics: the greatest (step, timestamp, value)."""
    return max(points, key=lambda point: (point["step"], point["timestamp"], point["value"]))


def loss_history(noise, points):
    """A `loss` curve of `points` points: 1/(step+1) plus small noise, one millisecond apart."""
    return [
        {"key": "loss", "value": 1.0 / (step + 1) + noise.uniform(0.0, 0.01), "timestamp": BASE_TIME + step, "step": step}
        for step in range(points)
    ]


def run_rows(experiment_id, artifact_location, index, rmse, history):
    """Every row one benchmark run owns, by table: what create_run and log_batch would insert."""
    run_id = uuid.uuid4().hex
    run_name = _generate_random_name()
    run = {
        "run_uuid": run_id,
        "name": run_name,
        "source_type": SourceType.to_string(SourceType.UNKNOWN),
        "source_name": "",
        "entry_point_name": "",
        "user_id": "",  # runs/create without user_id: the proto's empty default
        "status": RunStatus.to_string(RunStatus.RUNNING),
        "start_time": BASE_TIME + index,
        "end_time": None,
        "deleted_time": None,
        "source_version": "",
        "lifecycle_stage": LifecycleStage.ACTIVE,
        "artifact_uri": f"{artifact_location.rstrip('/')}/{run_id}/{SqlAlchemyStore.ARTIFACTS_FOLDER_NAME}",
        "experiment_id": experiment_id,
    }
    tags = [{"key": MLFLOW_RUN_NAME, "value": run_name}, {"key": "team", "value": "risk"}]
    params = [{"key": "model", "value": "gbdt" if index % 2 == 0 else "linear"}, {"key": "depth", "value": str(index % 10)}]
    metrics = [
        {"key": "rmse", "value": rmse, "timestamp": 1, "step": 0},
        {"key": "auc", "value": 1 - rmse, "timestamp": 1, "step": 0},
    ]
    # One point per key so far, so each is its key's latest; a history adds its latest point.
    latest = list(metrics)
    if history:
        metrics.extend(history)
        latest.append(latest_point(history))
    for row in tags + params:
        row["run_uuid"] = run_id
    for row in metrics:  # the latest_metrics rows are these same dicts
        row.update(run_uuid=run_id, is_nan=False)
    return {"runs": [run], "tags": tags, "params": params, "metrics": metrics, "latest_metrics": latest}


def insert_chunk(engine, rows_by_table):
    """Inserts one chunk's rows in one transaction, parents (runs) first for the foreign keys."""
    tables = [SqlRun.__table__, SqlTag.__table__, SqlParam.__table__, SqlMetric.__table__, SqlLatestMetric.__table__]
    with engine.begin() as connection:
        for table in tables:
            if rows_by_table[table.name]:
                connection.execute(table.insert(), rows_by_table[table.name])


def seed_mlflow(db_url, runs, histories=0, points=0, experiment_name="search", artifact_root=SERVER_ARTIFACT_ROOT):
    """Creates MLflow's schema and the experiment in the database at db_url, fills it with
    `runs` benchmark runs (the first `histories` with a `loss` history of `points` points) and
    returns the experiment id."""
    started = time.perf_counter()
    db_url = with_driver(db_url)
    create_schema(db_url)
    experiment_id = create_experiment(db_url, experiment_name, artifact_root)
    engine = sqlalchemy.create_engine(db_url)
    try:
        with engine.connect() as connection:
            artifact_location = connection.execute(
                sqlalchemy.text("SELECT artifact_location FROM experiments WHERE experiment_id = :id"),
                {"id": int(experiment_id)},
            ).scalar_one()
        # The same draws as bench.py's populate, taken before any run is made.
        rng = random.Random(7)
        plans = [(index, rng.random()) for index in range(runs)]
        noise = random.Random(11)
        # Chunks of at most a tenth of the runs, so that progress can be told every 10%.
        chunk = max(1, min(CHUNK_RUNS, -(-runs // 10)))
        next_report = 1
        for offset in range(0, runs, chunk):
            rows_by_table = {"runs": [], "tags": [], "params": [], "metrics": [], "latest_metrics": []}
            for index, rmse in plans[offset:offset + chunk]:
                history = loss_history(noise, points) if index < histories and points > 0 else None
                for table, rows in run_rows(int(experiment_id), artifact_location, index, rmse, history).items():
                    rows_by_table[table].extend(rows)
            insert_chunk(engine, rows_by_table)
            done = offset + len(rows_by_table["runs"])
            if done * 10 >= next_report * runs:
                print(f"seeded {done}/{runs} runs ({100 * done // runs}%) in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
                next_report = done * 10 // runs + 1
        if engine.dialect.name == "postgresql":
            # A database filled over half an hour of REST calls would have been analyzed by
            # autovacuum long before; give the planner the same statistics now.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sqlalchemy.text("ANALYZE"))
    finally:
        engine.dispose()
    return experiment_id


def postgres_identifier(name):
    """`name` if it is a plain lower-case identifier safe to put in DDL unquoted; else raises."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain PostgreSQL database name: {name!r}")
    return name


def postgres_url(name, admin_url=POSTGRES_ADMIN_URL):
    """The URL of database `name` on the server that admin_url points at, with the psycopg2
    driver named, as `mlflow server --backend-store-uri` needs it here."""
    return with_driver(sqlalchemy.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False))


def drop_postgres_database(name, admin_url=POSTGRES_ADMIN_URL):
    """Drops database `name` (if it exists), closing any connections still open to it."""
    engine = sqlalchemy.create_engine(with_driver(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {postgres_identifier(name)} WITH (FORCE)"))
    finally:
        engine.dispose()


def fresh_postgres_database(name, admin_url=POSTGRES_ADMIN_URL):
    """Drops and recreates the empty database `name`; returns its SQLAlchemy URL."""
    drop_postgres_database(name, admin_url)
    engine = sqlalchemy.create_engine(with_driver(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE {postgres_identifier(name)}"))
    finally:
        engine.dispose()
    return postgres_url(name, admin_url)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the tracking database")
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--histories", type=int, default=0, help="how many of the first runs get a `loss` history")
    parser.add_argument("--points", type=int, default=0, help="points in each `loss` history")
    parser.add_argument("--experiment-name", default="search")
    parser.add_argument("--artifact-root", default=SERVER_ARTIFACT_ROOT, help="the default artifact root of the server that will read the database")
    args = parser.parse_args()
    print(seed_mlflow(args.db, args.runs, args.histories, args.points, args.experiment_name, args.artifact_root))


if __name__ == "__main__":
    main()
