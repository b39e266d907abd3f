"""pytest plugin: MLflow's own live-server tests, each against a tracking server in its own process
(`causeway server`, or MLflow's own server app as the reference).

MLflow defines the fixtures that start a server (`mlflow_client`, `mlflow_client_with_secrets` in
test_rest_tracking.py, `client` in test_model_registry.py, `artifacts_server` in
test_mlflow_artifacts.py) inside the test modules themselves, and a module's own fixture always wins
over a plugin's. So, after collection, this plugin swaps the launchers those fixtures call:

  initialize_backend_stores(backend_uri, default_artifact_root)  -> remembers the store it was given
  ServerThread(app, port)         (in-process MLflow)            -> ServerProcess on that port
  _init_server(...)               (test_rest_tracking.py)        -> ServerProcess   (causeway only)
  _launch_server(...)             (test_mlflow_artifacts.py)     -> ServerProcess   (causeway only)

The test files themselves are not changed. Options: --upstream-server causeway|mlflow,
--causeway-binary PATH and --record-requests FILE. Parametrizations over MLflow's file store, which causeway has no
counterpart for (and MLflow 3 no longer supports), are deselected, as are tests that need Docker.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import requests

LOCALHOST = "127.0.0.1"
READY_ROUTE = "/api/2.0/mlflow/experiments/search?max_results=1"
READY_TIMEOUT_SECONDS = 60

# The launcher settings, set once from the command line in pytest_configure.
settings = {"server": "causeway", "causeway_binary": None}
# What the last initialize_backend_stores() call asked for; the next ServerThread uses it.
pending_store = {"backend_uri": None, "artifact_root": None}
# Why items were deselected, for the runner's summary.
deselected_reasons = {}


def pytest_addoption(parser):
    group = parser.getgroup("causeway-upstream")
    group.addoption("--upstream-server", choices=["causeway", "mlflow"], default="causeway")
    group.addoption("--causeway-binary", default=None, help="path to the causeway binary")
    group.addoption("--record-requests", default=None, metavar="FILE",
                    help="append every request the tests send that is answered >= 400 to FILE (JSON lines)")


def pytest_configure(config):
    settings["server"] = config.getoption("--upstream-server")
    settings["causeway_binary"] = config.getoption("--causeway-binary")
    if settings["server"] == "causeway" and not settings["causeway_binary"]:
        raise pytest.UsageError("--causeway-binary is required with --upstream-server causeway")
    if config.getoption("--record-requests"):
        record_failed_requests(config.getoption("--record-requests"))


# The test running now, for the request record.
current_test = {"id": None}


def pytest_runtest_logstart(nodeid, location):
    current_test["id"] = nodeid


def record_failed_requests(path):
    """Wraps requests (which MLflow's client uses too) to log each answer >= 400 with its request."""
    import json

    original_send = requests.Session.send

    def send(session, request, **kwargs):
        response = original_send(session, request, **kwargs)
        if response.status_code >= 400:
            body = request.body.decode(errors="replace") if isinstance(request.body, bytes) else request.body
            entry = {"test": current_test["id"], "method": request.method,
                     "path": request.path_url, "body": (body or "")[:600],
                     "status": response.status_code, "answer": response.text[:600]}
            with open(path, "a") as record:
                record.write(json.dumps(entry) + "\n")
        return response

    requests.Session.send = send


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def local_path(uri):
    """The directory a file: URI (or plain path) names, else None."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path)
    return None


class ServerProcess:
    """A tracking server in its own process: `with ServerProcess(...) as url:`.

    causeway: a fresh project (`causeway init --dir D`), then `causeway server --dir D`.
    mlflow:   MLflow's server app (mlflow.server.fastapi_app) under uvicorn, from this venv, on the
              test's own store: what `mlflow server` starts, and what MLflow's _init_server runs.
    """

    def __init__(self, port=None, backend_uri=None, artifact_root=None, artifacts_link=None,
                 extra_env=None):
        self.port = port or free_port()
        self.url = f"http://{LOCALHOST}:{self.port}"
        self.backend_uri = backend_uri
        self.artifact_root = artifact_root
        self.artifacts_link = artifacts_link  # a path that must show the server's proxied artifacts
        self.extra_env = extra_env or {}
        self.process = None
        self.directory = None

    def command(self):
        if settings["server"] == "mlflow":
            # What `mlflow server` runs, configured as the in-process fixture configures it
            # (the recipe of MLflow's own _init_server).
            return [sys.executable, "-m", "uvicorn", "mlflow.server.fastapi_app:app",
                    "--host", LOCALHOST, "--port", str(self.port)]
        binary = settings["causeway_binary"]
        project = os.path.join(self.directory, "project")
        artifacts = os.path.join(self.directory, "artifacts")
        subprocess.run([binary, "init", "--dir", project], check=True, capture_output=True)
        if self.artifacts_link:
            # Causeway keeps proxied artifacts under <artifacts>/mlflow-artifacts; the test reads
            # them back from the path it would have given `mlflow server --artifacts-destination`.
            os.makedirs(os.path.join(artifacts, "mlflow-artifacts"), exist_ok=True)
            os.symlink(os.path.join(artifacts, "mlflow-artifacts"), self.artifacts_link)
        command = [binary, "server", "--dir", project, "--artifacts", artifacts,
                   "--host", LOCALHOST, "--port", str(self.port)]
        if local_path(self.artifact_root):
            # The test gave MLflow a local default artifact root (clients write there directly,
            # MLflow's --no-serve-artifacts); causeway's counterpart is --default-artifact-root.
            command += ["--default-artifact-root", self.artifact_root]
        return command

    def __enter__(self):
        self.directory = tempfile.mkdtemp(prefix=f"upstream-{settings['server']}-")
        environment = {**os.environ, **{k: str(v) for k, v in self.extra_env.items()}}
        if settings["server"] == "mlflow":
            from mlflow.server import ARTIFACT_ROOT_ENV_VAR, BACKEND_STORE_URI_ENV_VAR

            environment[BACKEND_STORE_URI_ENV_VAR] = self.backend_uri or ""
            environment[ARTIFACT_ROOT_ENV_VAR] = self.artifact_root or ""
        try:
            # Its own process group, so that stopping it also stops any workers it starts.
            self.process = subprocess.Popen(self.command(), env=environment, start_new_session=True)
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self.url

    def wait_until_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{settings['server']} server exited with {self.process.returncode}")
            try:
                if requests.get(self.url + READY_ROUTE, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)  # a poll interval, not a wait for readiness
        raise RuntimeError(f"{settings['server']} server not ready on {self.url} "
                           f"within {READY_TIMEOUT_SECONDS}s")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process:
            with contextlib.suppress(ProcessLookupError):  # workers left behind by the server
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.artifacts_link and os.path.islink(self.artifacts_link):
            os.unlink(self.artifacts_link)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __exit__(self, *exception):
        self.stop()
        return None


# --- The launchers the upstream fixtures call, swapped in after collection. ---


def remember_backend_stores(backend_uri, default_artifact_root=None, *args, **kwargs):
    """Stands in for mlflow.server.handlers.initialize_backend_stores: nothing starts in-process."""
    pending_store["backend_uri"] = backend_uri
    pending_store["artifact_root"] = default_artifact_root


def server_thread(app=None, port=None):
    """Stands in for ServerThread(app, port): the server runs in its own process instead."""
    return ServerProcess(port=port, backend_uri=pending_store["backend_uri"],
                         artifact_root=pending_store["artifact_root"])


@contextlib.contextmanager
def init_server(backend_uri, root_artifact_uri, extra_env=None, app=None, server_type="fastapi"):
    """Stands in for tests.tracking.integration_test_utils._init_server (causeway only)."""
    with ServerProcess(artifact_root=root_artifact_uri, extra_env=extra_env) as url:
        yield url


@contextlib.contextmanager
def launch_server(host, port, backend_store_uri, default_artifact_root, artifacts_destination):
    """Stands in for test_mlflow_artifacts._launch_server (causeway only)."""
    server = ServerProcess(port=port, artifacts_link=local_path(artifacts_destination))
    with server:
        yield server.process


def replacements():
    swaps = {"initialize_backend_stores": remember_backend_stores, "ServerThread": server_thread}
    if settings["server"] == "causeway":
        # With mlflow these already start `mlflow server` / uvicorn in a separate process.
        swaps.update({"_init_server": init_server, "_launch_server": launch_server})
    return swaps


def is_file_store_parametrization(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    return any(callspec.params.get(name) == "file" for name in ("store_type", "client"))


def needs_docker(item):
    return item.name == "test_mlflow_artifacts_example"


def pytest_collection_modifyitems(session, config, items):
    import tests.tracking.integration_test_utils as integration_test_utils

    swaps = replacements()
    modules = {integration_test_utils} | {item.module for item in items if hasattr(item, "module")}
    for module in modules:
        for name, replacement in swaps.items():
            if hasattr(module, name):
                setattr(module, name, replacement)

    kept, deselected = [], []
    for item in items:
        reason = None
        if is_file_store_parametrization(item):
            reason = "file-store parametrization (no causeway counterpart; MLflow skips it too)"
        elif needs_docker(item):
            reason = "needs Docker (docker compose example), absent on this machine"
        if reason:
            deselected.append(item)
            deselected_reasons[item.nodeid] = reason
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("UPSTREAM_DESELECTED_FILE")
    if path:
        import json

        Path(path).write_text(json.dumps(deselected_reasons, indent=1, sort_keys=True))
