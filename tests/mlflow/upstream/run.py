"""Runs MLflow's own live-server tests, unmodified, against `causeway server` or `mlflow server`.

  .venv-mlflow-upstream/bin/python tests/mlflow/upstream/run.py \\
      --mlflow-checkout /tmp/mlflow-checkout --server causeway --causeway /tmp/causeway-baseline

--server mlflow runs the same tests, through the same plugin, against `mlflow server` from this
venv (the reference); --server mlflow-in-process runs them exactly as MLflow's CI does (no plugin,
MLflow's server in a thread of the test process). Writes RESULTS.xml (JUnit) and RESULTS.json
({test id: outcome}) and prints passed / failed / errors / skipped per file.

  run.py --compare mlflow.json causeway.json   lists the tests that pass in the first, not the second.
"""

import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEST_FILES = [
    "tests/tracking/test_rest_tracking.py",
    "tests/tracking/test_model_registry.py",
    "tests/tracking/test_mlflow_artifacts.py",
]


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--mlflow-checkout", type=Path, help="a checkout of MLflow's tests/ tree")
    parser.add_argument("--server", choices=["causeway", "mlflow", "mlflow-in-process"], default="causeway")
    parser.add_argument("--causeway", type=Path, help="the causeway binary (with --server causeway)")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--results", type=Path, help="result file stem [default: /tmp/upstream-results/SERVER]")
    parser.add_argument("--timeout", type=int, default=300, help="seconds one test may take")
    parser.add_argument("--record-requests", action="store_true",
                        help="log every request answered >= 400 to RESULTS.requests.jsonl")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("REFERENCE.json", "CANDIDATE.json"))
    parser.add_argument("tests", nargs="*", help="test ids or files, relative to the checkout [default: the three files]")
    return parser.parse_args()


def outcomes_from_junit(path):
    """{test id: passed|failed|error|skipped} from a pytest JUnit XML file."""
    outcomes = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}"
        children = {child.tag: child for child in case}
        if "error" in children:
            outcome = "error" if "failure" not in children else "failed"
        elif "failure" in children:
            outcome = "failed"
        elif "skipped" in children:
            outcome = "xfailed" if children["skipped"].get("type") == "pytest.xfail" else "skipped"
        else:
            outcome = "passed"
        # A teardown error after a pass or failure is reported as a second entry: keep the worst.
        if outcomes.get(test_id) in ("failed", "error"):
            continue
        outcomes[test_id] = outcome
    return outcomes


def print_summary(outcomes, deselected):
    per_file = {}
    for test_id, outcome in outcomes.items():
        per_file.setdefault(test_id.split("::")[0], Counter())[outcome] += 1
    for test_id in deselected:
        per_file.setdefault(test_id.split("::")[0], Counter())["deselected"] += 1
    total = Counter()
    print(f"{'file':45} {'passed':>7} {'failed':>7} {'errors':>7} {'skipped':>8} {'xfailed':>8} {'deselected':>11}")
    for file, counts in sorted(per_file.items()):
        total.update(counts)
        print(f"{file:45} {counts['passed']:7} {counts['failed']:7} {counts['error']:7} "
              f"{counts['skipped']:8} {counts['xfailed']:8} {counts['deselected']:11}")
    print(f"{'total':45} {total['passed']:7} {total['failed']:7} {total['error']:7} "
          f"{total['skipped']:8} {total['xfailed']:8} {total['deselected']:11}")


def compare(reference_path, candidate_path):
    reference = json.loads(reference_path.read_text())["outcomes"]
    candidate = json.loads(candidate_path.read_text())["outcomes"]
    regressions = sorted(t for t, o in reference.items() if o == "passed" and candidate.get(t) != "passed")
    for test_id in regressions:
        print(f"{candidate.get(test_id, 'missing'):8} {test_id}")
    print(f"{len(regressions)} pass in {reference_path.name} but not in {candidate_path.name}")


def main():
    arguments = parse_arguments()
    if arguments.compare:
        compare(*arguments.compare)
        return 0
    checkout = arguments.mlflow_checkout
    if checkout is None or not (checkout / TEST_FILES[0]).is_file():
        sys.exit(f"--mlflow-checkout must hold {TEST_FILES[0]} (MLflow's tests are not in this repository)")
    checkout = checkout.resolve()
    results = arguments.results or Path("/tmp/upstream-results") / arguments.server
    results.parent.mkdir(parents=True, exist_ok=True)
    junit, deselected_file = results.with_suffix(".xml"), results.with_suffix(".deselected.json")

    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=no", "-rfE",
               f"--timeout={arguments.timeout}", f"--junitxml={junit}", "-o", "junit_family=xunit1"]
    environment = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ in the repository
    # `mlflow` and `uvicorn` as the upstream launchers call them: this venv's.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    if arguments.server != "mlflow-in-process":
        command += ["-p", "plugin", "--upstream-server", arguments.server]
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), environment.get("PYTHONPATH")]))
        environment["UPSTREAM_DESELECTED_FILE"] = str(deselected_file)
        if arguments.record_requests:
            record = results.with_suffix(".requests.jsonl")
            record.unlink(missing_ok=True)
            command += ["--record-requests", str(record)]
    if arguments.server == "causeway":
        if not arguments.causeway or not arguments.causeway.is_file():
            sys.exit("--server causeway needs --causeway BINARY")
        command += ["--causeway-binary", str(arguments.causeway.resolve())]
    if arguments.keyword:
        command += ["-k", arguments.keyword]
    command += arguments.tests or TEST_FILES

    print(" ".join(command), flush=True)
    exit_code = subprocess.call(command, cwd=checkout, env=environment)

    outcomes = outcomes_from_junit(junit)
    deselected = json.loads(deselected_file.read_text()) if deselected_file.is_file() else {}
    summary = {"server": arguments.server, "checkout": str(checkout), "pytest_exit_code": exit_code,
               "outcomes": outcomes, "deselected": deselected}
    results.with_suffix(".json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    print_summary(outcomes, deselected)
    print(f"results: {junit} and {results.with_suffix('.json')}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
