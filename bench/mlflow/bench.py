"""Causeway's tracking server against `mlflow server` (SQLite backend), same machine, same
client workload, one run. Prints medians and ratios; writes them as JSON with --json.

    python bench/mlflow/bench.py --causeway target/release/causeway [--quick] [--json out.json] [--causeway-store URL]
        [--sizes 1000,10000,100000] [--backends sqlite,postgres] [--page-timing target/release/examples/page_timing]

Measured, for each server:
  cold start      spawn → first successful API answer
  idle memory     resident set of the server's whole process tree, 2 s after it is ready
  ingest          metrics per second through runs/log-batch (1,000 metrics a request), 4 clients
  search          runs/search over N runs in one experiment (each --sizes, on each --backends;
                  10,000 on SQLite by default, 1,000 with --quick) filtering on a param and
                  ordering by a metric, 1,000 runs a page, median of 5; the first 100 runs also
                  hold a 1,000-point `loss` history. Causeway's runs are made through its REST API;
                  MLflow's are written straight into its database by seed_mlflow.py (the same
                  contents; its REST API would take ~20 ms a run)
  runs list       the web UI's first page (no filter, newest first, 100 runs) and the fifth by
                  its page tokens, median of 5, with Causeway's own time (Server-Timing) beside
  browser         with --page-timing, at the largest size on SQLite: headless Chromium's load
                  event and time to a usable runs page, Causeway's web UI against MLflow's, and
                  Causeway's run page drawing the chart of a 100,000-point metric history
  small writes    single runs/log-metric requests per second, 4 clients (each acknowledged write
                  is one commit, so this is where durability costs)

With --durability both, Causeway is measured twice: durable commits (its default, SQLite
synchronous=FULL) and `?durability=normal` (synchronous=NORMAL, what it used before).
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

import seed_mlflow

API = "/api/2.0/mlflow"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss_kib(pid):
    """Resident memory of a process and all its descendants, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except OSError:
            continue
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Server:
    def __init__(self, kind, causeway, mlflow, workdir, causeway_store=None, mlflow_store=None):
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if kind == "causeway":
            project = os.path.join(workdir, "project")
            stores = ["--store", causeway_store] if causeway_store else []
            subprocess.run([causeway, "init", "--dir", project, *stores], check=True, stdout=subprocess.DEVNULL)
            command = [causeway, "server", "--dir", project, "--port", str(self.port), *stores]
        else:
            command = [
                mlflow, "server",
                "--backend-store-uri", mlflow_store or f"sqlite:///{workdir}/mlflow.db",
                "--artifacts-destination", f"{workdir}/artifacts",
                "--host", "127.0.0.1", "--port", str(self.port),
            ]
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.cold_start = self.wait_ready()

    def wait_ready(self, limit=300):
        deadline = self.started + limit
        while time.perf_counter() < deadline:
            try:
                if requests.get(f"{self.url}{API}/experiments/get", params={"experiment_id": "0"}, timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except requests.RequestException:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.kind} did not become ready in {limit} s")

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)


def post(session, url, path, body, timeout=120):
    response = session.post(f"{url}{API}/{path}", json=body, timeout=timeout)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return response.json()


def run_clients(client, runs, errors):
    """Runs `client(run_id)` in one thread per run; returns the seconds they took together."""
    threads = [threading.Thread(target=client, args=(run_id,)) for run_id in runs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def ingest(server, clients=4, batches=25):
    """Metrics per second through log-batch, `clients` threads each with its own run."""
    session = requests.Session()
    experiment = post(session, server.url, "experiments/create", {"name": f"ingest-{random.random()}"})["experiment_id"]
    runs = [post(session, server.url, "runs/create", {"experiment_id": experiment})["run"]["info"]["run_id"] for _ in range(clients)]
    errors = []

    def client(run_id):
        own = requests.Session()
        try:
            for batch in range(batches):
                metrics = [{"key": f"m{index % 10}", "value": index * 0.5, "timestamp": 1_700_000_000_000, "step": batch * 1000 + index} for index in range(1000)]
                post(own, server.url, "runs/log-batch", {"run_id": run_id, "metrics": metrics})
        except Exception as error:  # reported below
            errors.append(error)

    return clients * batches * 1000 / run_clients(client, runs, errors)


def small_writes(server, clients=4, writes=200):
    """Acknowledged single-metric writes per second, `clients` threads each with its own run."""
    session = requests.Session()
    experiment = post(session, server.url, "experiments/create", {"name": f"small-{random.random()}"})["experiment_id"]
    runs = [post(session, server.url, "runs/create", {"experiment_id": experiment})["run"]["info"]["run_id"] for _ in range(clients)]
    errors = []

    def client(run_id):
        own = requests.Session()
        try:
            for index in range(writes):
                post(own, server.url, "runs/log-metric", {"run_id": run_id, "key": "loss", "value": index * 0.5, "timestamp": 1_700_000_000_000 + index, "step": index})
        except Exception as error:  # reported below
            errors.append(error)

    return clients * writes / run_clients(client, runs, errors)


def populate(server, runs, clients=4, histories=0, points=0):
    """The search workload through the REST API: `runs` runs (the first `histories` with a
    `points`-point `loss` history), the same contents seed_mlflow.seed_mlflow writes."""
    session = requests.Session()
    experiment = post(session, server.url, "experiments/create", {"name": "search"})["experiment_id"]
    rng = random.Random(7)
    noise = random.Random(11)
    plans = [(index, rng.random(), seed_mlflow.loss_history(noise, points) if index < histories and points else None) for index in range(runs)]
    errors = []

    def client(part):
        own = requests.Session()
        try:
            for index, rmse, history in part:
                run_id = post(own, server.url, "runs/create", {"experiment_id": experiment, "start_time": 1_700_000_000_000 + index})["run"]["info"]["run_id"]
                post(own, server.url, "runs/log-batch", {
                    "run_id": run_id,
                    "params": [{"key": "model", "value": "gbdt" if index % 2 == 0 else "linear"}, {"key": "depth", "value": str(index % 10)}],
                    "metrics": [{"key": "rmse", "value": rmse, "timestamp": 1, "step": 0}, {"key": "auc", "value": 1 - rmse, "timestamp": 1, "step": 0}],
                    "tags": [{"key": "team", "value": "risk"}],
                })
                for start in range(0, len(history or []), 1000):
                    post(own, server.url, "runs/log-batch", {"run_id": run_id, "metrics": history[start:start + 1000]})
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=client, args=(plans[offset::clients],)) for offset in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return experiment


def long_history_run(server, experiment, points=100_000):
    """A run with a `points`-point `training_loss` history (the web UI's chart case); its id."""
    session = requests.Session()
    run_id = post(session, server.url, "runs/create", {"experiment_id": experiment, "start_time": 1_600_000_000_000, "run_name": "long-history"})["run"]["info"]["run_id"]
    noise = random.Random(13)
    for start in range(0, points, 1000):
        metrics = [{"key": "training_loss", "value": 1.0 / (step + 1) + noise.uniform(0.0, 0.01), "timestamp": 1_600_000_000_000 + step, "step": step} for step in range(start, min(points, start + 1000))]
        post(session, server.url, "runs/log-batch", {"run_id": run_id, "metrics": metrics})
    return run_id


# A measurement that takes longer than this once is not repeated (MLflow's search over 100,000
# runs on SQLite takes minutes); the figure is then one run, and the JSON says how many.
PATIENCE_S = 60


def search(server, experiment, repeats=5):
    session = requests.Session()
    timings = []
    for _ in range(repeats):
        if timings and timings[-1] > PATIENCE_S:
            break
        started = time.perf_counter()
        found = post(session, server.url, "runs/search", {
            "experiment_ids": [experiment],
            "filter": "params.model = 'gbdt'",
            "order_by": ["metrics.rmse ASC"],
            "max_results": 1000,
        }, timeout=1800)
        timings.append(time.perf_counter() - started)
        assert len(found.get("runs", [])) == 1000 or len(found.get("runs", [])) > 0
    return statistics.median(timings)


def first_page(server, experiment, repeats=5):
    """The web UI's runs list: no filter, the default order (newest first), 100 runs; then the
    fifth page by following the page tokens. Medians of `repeats`, and of the first page's
    server time where the server reports one (Server-Timing: app;dur=MS), else None."""
    session = requests.Session()
    firsts, fifths, server_times = [], [], []
    for _ in range(repeats):
        if firsts and firsts[-1] + fifths[-1] > PATIENCE_S:
            break
        started = time.perf_counter()
        response = session.post(f"{server.url}{API}/runs/search", json={"experiment_ids": [experiment], "max_results": 100}, timeout=1800)
        page = response.json()
        firsts.append(time.perf_counter() - started)
        timing = response.headers.get("server-timing", "")
        if "dur=" in timing:
            server_times.append(float(timing.split("dur=")[1].split(",")[0]) / 1000)
        assert len(page.get("runs", [])) == 100
        for _ in range(4):
            token = page["next_page_token"]
            started = time.perf_counter()
            page = post(session, server.url, "runs/search", {"experiment_ids": [experiment], "max_results": 100, "page_token": token}, timeout=1800)
        fifths.append(time.perf_counter() - started)
    return statistics.median(firsts), statistics.median(fifths), statistics.median(server_times) if server_times else None


def page_timing(tool, url, ready, repeats=5):
    """Headless Chromium's medians for a page: (load event, ready) in seconds."""
    answer = subprocess.run([tool, "--url", url, "--ready", ready, "--repeats", str(repeats)], capture_output=True, text=True, timeout=900)
    if answer.returncode != 0:
        raise RuntimeError(f"page_timing {url} failed:\n{answer.stderr[-3000:]}")
    timing = json.loads(answer.stdout.strip().splitlines()[-1])
    return timing["load_ms"] / 1000, timing["ready_ms"] / 1000


# When each web UI's runs page is usable: Causeway's page says so and shows its first 50 runs.
CAUSEWAY_RUNS_READY = "document.querySelector('main') && document.querySelector('main').dataset.ready === 'runs' && document.querySelectorAll('#runs tbody tr').length >= 50"
# MLflow's grid renders only the rows in view: a screenful (20) of rows is its usable page.
MLFLOW_RUNS_READY = "document.querySelectorAll('[role=row]').length > 20"
CAUSEWAY_RUN_READY = "document.querySelector('main') && document.querySelector('main').dataset.ready === 'run' && document.querySelector('#metric-chart canvas') !== null"


def measure(kind, causeway, mlflow, runs, causeway_store=None, durability=None):
    """Cold start, idle memory, ingest and small writes of one server on a fresh store."""
    workdir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    if durability:
        causeway_store = f"sqlite://{workdir}/meta.db?durability={durability}"
    server = Server(kind, causeway, mlflow, workdir, causeway_store)
    try:
        time.sleep(2)
        result = {"cold_start_s": server.cold_start, "idle_rss_mib": tree_rss_kib(server.process.pid) / 1024}
        result["ingest_metrics_per_s"] = statistics.median(ingest(server) for _ in range(3))
        result["small_writes_per_s"] = statistics.median(small_writes(server) for _ in range(3))
        return result
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def on_test_database(sql):
    """Runs `sql` on the PostgreSQL database Causeway's stores use here, outside a transaction."""
    import psycopg2

    connection = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def analyze_causeway_schema(schema):
    """What autovacuum would have done to a store filled over minutes: planner statistics."""
    on_test_database(f'SET search_path TO "{schema}"; ANALYZE runs, run_params, run_tags, run_metrics, run_latest_metrics')


def drop_causeway_schema(schema):
    on_test_database(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def measure_search(kind, causeway, mlflow, runs, backend, timing_tool=None, histories=100, points=1000):
    """Search and the runs list over `runs` runs on one backend; the browser's figures too with
    `timing_tool`."""
    workdir = tempfile.mkdtemp(prefix=f"bench-{kind}-{backend}-")
    tag = f"{os.getpid()}_{runs}"
    result = {}
    server = None
    try:
        if kind == "causeway":
            store = f"postgresql://postgres@127.0.0.1:5432/test?schema=bench_{tag}" if backend == "postgres" else None
            if store:
                drop_causeway_schema(f"bench_{tag}")
            server = Server(kind, causeway, mlflow, workdir, store)
            started = time.perf_counter()
            experiment = populate(server, runs, clients=8, histories=histories, points=points)
            result["populate_s"] = time.perf_counter() - started
            if store:
                analyze_causeway_schema(f"bench_{tag}")
        else:
            if backend == "postgres":
                database = seed_mlflow.fresh_postgres_database(f"mlflow_bench_{tag}")
            else:
                database = f"sqlite:///{workdir}/mlflow.db"
            started = time.perf_counter()
            experiment = seed_mlflow.seed_mlflow(database, runs, histories=histories, points=points)
            result["seed_s"] = time.perf_counter() - started
            server = Server(kind, causeway, mlflow, workdir, mlflow_store=database)
        result["search_s"] = search(server, experiment)
        result["first_page_s"], result["fifth_page_s"], result["first_page_server_s"] = first_page(server, experiment)
        if timing_tool:
            if kind == "causeway":
                url = f"{server.url}/ui/experiments/{experiment}"
                result["browser_load_s"], result["browser_ready_s"] = page_timing(timing_tool, url, CAUSEWAY_RUNS_READY)
                long_run = long_history_run(server, experiment)
                result["chart_load_s"], result["chart_ready_s"] = page_timing(timing_tool, f"{server.url}/ui/runs/{long_run}?metric=training_loss", CAUSEWAY_RUN_READY)
            else:
                url = f"{server.url}/#/experiments/{experiment}/runs"
                result["browser_load_s"], result["browser_ready_s"] = page_timing(timing_tool, url, MLFLOW_RUNS_READY)
        return result
    finally:
        if server:
            server.stop()
        if kind == "mlflow" and backend == "postgres":
            seed_mlflow.drop_postgres_database(f"mlflow_bench_{tag}")
        if kind == "causeway" and backend == "postgres":
            drop_causeway_schema(f"bench_{tag}")
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--causeway", required=True)
    parser.add_argument("--mlflow", default=os.path.join(os.path.dirname(sys.executable), "mlflow"))
    parser.add_argument("--quick", action="store_true", help="search over 1,000 runs only")
    parser.add_argument("--sizes", help="comma-separated run counts for search and the runs list (default 10000; 1000 with --quick)")
    parser.add_argument("--backends", default="sqlite", help="comma-separated: sqlite, postgres (PostgreSQL on 127.0.0.1:5432)")
    parser.add_argument("--page-timing", help="the page_timing example (cargo build --release -p causeway-test-support --example page_timing): adds the browser's figures")
    parser.add_argument("--search-only", action="store_true", help="skip cold start, memory, ingest and small writes")
    parser.add_argument("--json")
    parser.add_argument("--causeway-store", help="Causeway's metadata store URL for the write figures (default: its embedded SQLite)")
    parser.add_argument("--durability", choices=["default", "both"], default="default", help="both: also measure Causeway with ?durability=normal")
    args = parser.parse_args()
    sizes = [int(size) for size in (args.sizes or ("1000" if args.quick else "10000")).split(",")]
    backends = args.backends.split(",")
    results, ratios = {}, {}
    if not args.search_only:
        for kind in ("causeway", "mlflow"):
            print(f"measuring {kind} ...", file=sys.stderr, flush=True)
            results[kind] = measure(kind, args.causeway, args.mlflow, sizes[0], args.causeway_store)
        if args.durability == "both":
            print("measuring causeway with ?durability=normal ...", file=sys.stderr, flush=True)
            results["causeway_normal"] = measure("causeway", args.causeway, args.mlflow, sizes[0], durability="normal")
        causeway, mlflow = results["causeway"], results["mlflow"]
        ratios.update({
            "ingest (causeway / mlflow, goal >= 10)": causeway["ingest_metrics_per_s"] / mlflow["ingest_metrics_per_s"],
            "cold start (mlflow / causeway, goal >= 10)": mlflow["cold_start_s"] / causeway["cold_start_s"],
            "idle memory (mlflow / causeway, goal >= 5)": mlflow["idle_rss_mib"] / causeway["idle_rss_mib"],
        })
        normal = results.get("causeway_normal")
        print(f"{'measure':<28}{'causeway':>16}{'mlflow':>16}" + (f"{'causeway normal':>18}" if normal else ""))
        for key, label in [("cold_start_s", "cold start (s)"), ("idle_rss_mib", "idle memory (MiB)"), ("ingest_metrics_per_s", "ingest (metrics/s)"), ("small_writes_per_s", "small writes (/s)")]:
            print(f"{label:<28}{causeway[key]:>16.4g}{mlflow[key]:>16.4g}" + (f"{normal[key]:>18.4g}" if normal else ""))
        if normal:
            ratios["small writes (durable / normal)"] = causeway["small_writes_per_s"] / normal["small_writes_per_s"]
            ratios["ingest (durable / normal)"] = causeway["ingest_metrics_per_s"] / normal["ingest_metrics_per_s"]
            ratios["small writes (causeway durable / mlflow)"] = causeway["small_writes_per_s"] / mlflow["small_writes_per_s"]
    searches = {}
    for backend in backends:
        for runs in sizes:
            browser = args.page_timing if backend == "sqlite" and runs == max(sizes) else None
            pair = {}
            for kind in ("causeway", "mlflow"):
                print(f"measuring {kind} search over {runs} runs on {backend} ...", file=sys.stderr, flush=True)
                pair[kind] = measure_search(kind, args.causeway, args.mlflow, runs, backend, browser)
            searches[f"{backend}/{runs}"] = pair
            print(f"{backend}/{runs}: {json.dumps(pair)}", file=sys.stderr, flush=True)
            if args.json:
                with open(args.json, "w") as handle:
                    json.dump({"sizes": sizes, "backends": backends, "results": dict(results, search=searches), "partial": True}, handle, indent=2)
            causeway, mlflow = pair["causeway"], pair["mlflow"]
            ratios[f"search over {runs} runs on {backend} (mlflow / causeway, goal >= 20)"] = mlflow["search_s"] / causeway["search_s"]
            ratios[f"runs list first page over {runs} runs on {backend} (mlflow / causeway)"] = mlflow["first_page_s"] / causeway["first_page_s"]
            ratios[f"runs list fifth page over {runs} runs on {backend} (mlflow / causeway)"] = mlflow["fifth_page_s"] / causeway["fifth_page_s"]
            if browser:
                ratios[f"usable runs page in the browser over {runs} runs (mlflow / causeway)"] = mlflow["browser_ready_s"] / causeway["browser_ready_s"]
    results["search"] = searches
    print(f"{'search and runs list':<44}{'causeway':>12}{'mlflow':>12}{'ratio':>8}")
    rows = [("search_s", "search, 1,000 a page (s)"), ("first_page_s", "first page of 100 (s)"), ("first_page_server_s", "  of it, server time (s)"), ("fifth_page_s", "fifth page of 100 (s)"),
            ("browser_load_s", "browser: load event (s)"), ("browser_ready_s", "browser: usable runs page (s)"), ("chart_ready_s", "browser: 100,000-point chart (s)")]
    for name, pair in searches.items():
        for key, label in rows:
            causeway, mlflow = pair["causeway"].get(key), pair["mlflow"].get(key)
            if causeway is None and mlflow is None:
                continue
            shown = lambda value: f"{value:>12.4g}" if value is not None else f"{'-':>12}"
            ratio = f"{mlflow / causeway:>7.1f}x" if causeway and mlflow else f"{'':>8}"
            print(f"{name + ' ' + label:<44}{shown(causeway)}{shown(mlflow)}{ratio}")
    for label, ratio in ratios.items():
        print(f"ratio {label}: {ratio:.1f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"sizes": sizes, "backends": backends, "results": results, "ratios": ratios}, handle, indent=2)


if __name__ == "__main__":
    main()
