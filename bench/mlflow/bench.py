"""Causeway's tracking server against `mlflow server` (SQLite backend), same machine, same
client workload, one run. Prints medians and ratios; writes them as JSON with --json.

    python bench/mlflow/bench.py --causeway target/release/causeway [--quick] [--json out.json] [--causeway-store URL]

Measured, for each server:
  cold start      spawn → first successful API answer
  idle memory     resident set of the server's whole process tree, 2 s after it is ready
  ingest          metrics per second through runs/log-batch (1,000 metrics a request), 4 clients
  search          runs/search over N runs (10,000; 1,000 with --quick) filtering on a param and
                  ordering by a metric, median of 5
  runs list       the web UI's first page (no filter, newest first, 100 runs) and the fifth by
                  its page tokens, median of 5
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
    def __init__(self, kind, causeway, mlflow, workdir, causeway_store=None):
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
                "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
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


def post(session, url, path, body):
    response = session.post(f"{url}{API}/{path}", json=body, timeout=120)
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


def populate(server, runs, clients=4):
    session = requests.Session()
    experiment = post(session, server.url, "experiments/create", {"name": "search"})["experiment_id"]
    rng = random.Random(7)
    plans = [(index, rng.random()) for index in range(runs)]

    def client(part):
        own = requests.Session()
        for index, rmse in part:
            run_id = post(own, server.url, "runs/create", {"experiment_id": experiment, "start_time": 1_700_000_000_000 + index})["run"]["info"]["run_id"]
            post(own, server.url, "runs/log-batch", {
                "run_id": run_id,
                "params": [{"key": "model", "value": "gbdt" if index % 2 == 0 else "linear"}, {"key": "depth", "value": str(index % 10)}],
                "metrics": [{"key": "rmse", "value": rmse, "timestamp": 1, "step": 0}, {"key": "auc", "value": 1 - rmse, "timestamp": 1, "step": 0}],
                "tags": [{"key": "team", "value": "risk"}],
            })

    threads = [threading.Thread(target=client, args=(plans[offset::clients],)) for offset in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return experiment


def search(server, experiment, repeats=5):
    session = requests.Session()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        found = post(session, server.url, "runs/search", {
            "experiment_ids": [experiment],
            "filter": "params.model = 'gbdt'",
            "order_by": ["metrics.rmse ASC"],
            "max_results": 1000,
        })
        timings.append(time.perf_counter() - started)
        assert len(found.get("runs", [])) == 1000 or len(found.get("runs", [])) > 0
    return statistics.median(timings)


def first_page(server, experiment, repeats=5):
    """The web UI's runs list: no filter, the default order (newest first), 100 runs; then the
    fifth page by following the page tokens. Medians of `repeats`."""
    session = requests.Session()
    firsts, fifths = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        page = post(session, server.url, "runs/search", {"experiment_ids": [experiment], "max_results": 100})
        firsts.append(time.perf_counter() - started)
        assert len(page.get("runs", [])) == 100
        for _ in range(4):
            token = page["next_page_token"]
            started = time.perf_counter()
            page = post(session, server.url, "runs/search", {"experiment_ids": [experiment], "max_results": 100, "page_token": token})
        fifths.append(time.perf_counter() - started)
    return statistics.median(firsts), statistics.median(fifths)


def measure(kind, causeway, mlflow, runs, causeway_store=None, durability=None):
    workdir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    if durability:
        causeway_store = f"sqlite://{workdir}/meta.db?durability={durability}"
    server = Server(kind, causeway, mlflow, workdir, causeway_store)
    try:
        time.sleep(2)
        result = {"cold_start_s": server.cold_start, "idle_rss_mib": tree_rss_kib(server.process.pid) / 1024}
        result["ingest_metrics_per_s"] = statistics.median(ingest(server) for _ in range(3))
        result["small_writes_per_s"] = statistics.median(small_writes(server) for _ in range(3))
        started = time.perf_counter()
        experiment = populate(server, runs)
        result["populate_s"] = time.perf_counter() - started
        result["search_s"] = search(server, experiment)
        result["first_page_s"], result["fifth_page_s"] = first_page(server, experiment)
        return result
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--causeway", required=True)
    parser.add_argument("--mlflow", default=os.path.join(os.path.dirname(sys.executable), "mlflow"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--causeway-store", help="Causeway's metadata store URL (default: its embedded SQLite), e.g. postgresql://postgres@127.0.0.1:5432/test?schema=bench_1")
    parser.add_argument("--durability", choices=["default", "both"], default="default", help="both: also measure Causeway with ?durability=normal")
    args = parser.parse_args()
    runs = 1000 if args.quick else 10_000
    results = {}
    for kind in ("causeway", "mlflow"):
        print(f"measuring {kind} ...", file=sys.stderr, flush=True)
        results[kind] = measure(kind, args.causeway, args.mlflow, runs, args.causeway_store)
    if args.durability == "both":
        print("measuring causeway with ?durability=normal ...", file=sys.stderr, flush=True)
        results["causeway_normal"] = measure("causeway", args.causeway, args.mlflow, runs, durability="normal")
    causeway, mlflow = results["causeway"], results["mlflow"]
    ratios = {
        "ingest (causeway / mlflow, goal >= 10)": causeway["ingest_metrics_per_s"] / mlflow["ingest_metrics_per_s"],
        f"search over {runs} runs (mlflow / causeway, goal >= 10)": mlflow["search_s"] / causeway["search_s"],
        f"runs list first page of 100 over {runs} runs (mlflow / causeway, goal >= 20)": mlflow["first_page_s"] / causeway["first_page_s"],
        f"runs list fifth page (mlflow / causeway)": mlflow["fifth_page_s"] / causeway["fifth_page_s"],
        "cold start (mlflow / causeway, goal >= 10)": mlflow["cold_start_s"] / causeway["cold_start_s"],
        "idle memory (mlflow / causeway, goal >= 5)": mlflow["idle_rss_mib"] / causeway["idle_rss_mib"],
    }
    normal = results.get("causeway_normal")
    print(f"{'measure':<28}{'causeway':>16}{'mlflow':>16}" + (f"{'causeway normal':>18}" if normal else ""))
    for key, label in [("cold_start_s", "cold start (s)"), ("idle_rss_mib", "idle memory (MiB)"), ("ingest_metrics_per_s", "ingest (metrics/s)"), ("small_writes_per_s", "small writes (/s)"), ("populate_s", f"create {runs} runs (s)"), ("search_s", "search, median (s)"), ("first_page_s", "first page of 100 (s)"), ("fifth_page_s", "fifth page of 100 (s)")]:
        print(f"{label:<28}{causeway[key]:>16.4g}{mlflow[key]:>16.4g}" + (f"{normal[key]:>18.4g}" if normal else ""))
    if normal:
        ratios["small writes (durable / normal)"] = causeway["small_writes_per_s"] / normal["small_writes_per_s"]
        ratios["ingest (durable / normal)"] = causeway["ingest_metrics_per_s"] / normal["ingest_metrics_per_s"]
        ratios["small writes (causeway durable / mlflow)"] = causeway["small_writes_per_s"] / mlflow["small_writes_per_s"]
    for label, ratio in ratios.items():
        print(f"ratio {label}: {ratio:.1f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"runs": runs, "results": results, "ratios": ratios}, handle, indent=2)


if __name__ == "__main__":
    main()
