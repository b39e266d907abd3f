"""Unmodified MLflow client code against `causeway server`: every value read back must equal
what was written. Run with MLFLOW_TRACKING_URI pointing at the server; prints
'N passed, N failed' and exits non-zero on any failure."""

import json
import os
import sys
import tempfile
import traceback

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient

checks = []


def check(name, condition, detail=""):
    checks.append((name, bool(condition), detail))


def main():
    client = MlflowClient()
    experiment = mlflow.set_experiment("acceptance")
    check("set_experiment creates the experiment", experiment.name == "acceptance")
    again = mlflow.set_experiment("acceptance")
    check("set_experiment finds it again", again.experiment_id == experiment.experiment_id)

    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("depth", 5)
        mlflow.log_params({"lr": 0.1, "model": "gbdt"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"auc": 0.93, "recall": 0.81})
        mlflow.set_tag("team", "risk")
        mlflow.log_dict({"features": ["amount", "hour"]}, "config/features.json")
        mlflow.log_text("hello causeway", "notes/readme.txt")
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "weights.bin")
            with open(path, "wb") as handle:
                handle.write(bytes(range(256)) * 4)
            mlflow.log_artifact(path, artifact_path="model")
        mlflow.log_text("artifact_path: model\nflavors: {}\n", "model/MLmodel")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("child_metric", 2.5)
        parent_id = parent.info.run_id
        child_id = child.info.run_id

    client.log_batch(
        parent_id,
        metrics=[Metric("batch_metric", 7.0, 1_700_000_000_000, 3)],
        params=[Param("batch_param", "x")],
        tags=[RunTag("batch_tag", "y")],
    )

    dataset = Dataset("transactions", "1e9addbd6767", "causeway", '{"uri": "causeway://transactions"}', '{"columns": ["amount"]}')
    client.log_inputs(parent_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])])

    run = client.get_run(parent_id)
    inputs = run.inputs.dataset_inputs
    check(
        "log_inputs round trip",
        len(inputs) == 1
        and inputs[0].dataset.name == "transactions"
        and inputs[0].dataset.digest == "1e9addbd6767"
        and inputs[0].dataset.schema == '{"columns": ["amount"]}'
        and [(tag.key, tag.value) for tag in inputs[0].tags] == [("mlflow.data.context", "training")],
        inputs,
    )
    check("run finished", run.info.status == "FINISHED", run.info.status)
    check("run name", run.info.run_name == "parent", run.info.run_name)
    check("params", run.data.params.get("depth") == "5" and run.data.params.get("lr") == "0.1" and run.data.params.get("model") == "gbdt", run.data.params)
    check("latest loss", abs(run.data.metrics.get("loss", -1) - 0.2) < 1e-12, run.data.metrics)
    check("metrics dict", run.data.metrics.get("auc") == 0.93 and run.data.metrics.get("recall") == 0.81, run.data.metrics)
    check("batch", run.data.metrics.get("batch_metric") == 7.0 and run.data.params.get("batch_param") == "x" and run.data.tags.get("batch_tag") == "y")
    check("tag", run.data.tags.get("team") == "risk", run.data.tags)

    history = client.get_metric_history(parent_id, "loss")
    check("metric history", [(point.step, point.value) for point in history] == [(step, 1.0 / (step + 1)) for step in range(5)], history)

    child_run = client.get_run(child_id)
    check("nested run has its parent", child_run.data.tags.get("mlflow.parentRunId") == parent_id, child_run.data.tags)

    found = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="params.depth = '5' and metrics.loss < 1",
        order_by=["metrics.loss ASC"],
        output_format="list",
    )
    check("search_runs filter", [item.info.run_id for item in found] == [parent_id], [item.info.run_id for item in found])
    all_runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    check("search_runs finds both", {item.info.run_id for item in all_runs} == {parent_id, child_id})
    # The rest of MLflow's filter syntax, as its client sends it.
    for filter_string, expected in [
        (f"attributes.run_id IN ('{child_id}', 'no-such-run')", [child_id]),
        (f"attributes.run_id NOT IN ('{child_id}')", [parent_id]),
        ("params.depth IS NULL", [child_id]),
        ("tags.team IS NOT NULL", [parent_id]),
        ("datasets.name = 'transactions' and datasets.context = 'training'", [parent_id]),
        ("datasets.digest IN ('1e9addbd6767', 'other')", [parent_id]),
        ("datasets.name NOT IN ('transactions')", []),
    ]:
        matched = [item.info.run_id for item in client.search_runs([experiment.experiment_id], filter_string)]
        check(f"search_runs {filter_string}", matched == expected, matched)

    top = {item.path for item in client.list_artifacts(parent_id)}
    check("list artifacts", {"config", "notes", "model"} <= top, top)
    model_files = client.list_artifacts(parent_id, "model")
    listed = [(item.path, item.file_size) for item in model_files]
    check("list a directory", listed == [("model/MLmodel", 33), ("model/weights.bin", 1024)], listed)
    with tempfile.TemporaryDirectory() as directory:
        local = client.download_artifacts(parent_id, "model/weights.bin", directory)
        with open(local, "rb") as handle:
            check("download artifact", handle.read() == bytes(range(256)) * 4)
    loaded = mlflow.artifacts.load_dict(f"runs:/{parent_id}/config/features.json")
    check("log_dict round trip", loaded == {"features": ["amount", "hour"]}, loaded)
    text = mlflow.artifacts.load_text(f"runs:/{parent_id}/notes/readme.txt")
    check("log_text round trip", text == "hello causeway", text)

    registered = mlflow.register_model(f"runs:/{parent_id}/model", "fraud-detector")
    check("register_model creates version 1", registered.version == "1" and registered.status == "READY", registered)
    second = client.create_model_version("fraud-detector", f"mlflow-artifacts:/{experiment.experiment_id}/{parent_id}/artifacts/model", run_id=parent_id, description="second")
    check("create_model_version", second.version == "2" and second.description == "second", second)
    client.set_registered_model_alias("fraud-detector", "champion", "2")
    by_alias = client.get_model_version_by_alias("fraud-detector", "champion")
    check("get_model_version_by_alias", by_alias.version == "2" and by_alias.run_id == parent_id, by_alias)
    model = client.get_registered_model("fraud-detector")
    check("registered model aliases", model.aliases == {"champion": "2"}, model.aliases)
    versions = client.search_model_versions("name='fraud-detector'")
    check("search_model_versions", sorted(version.version for version in versions) == ["1", "2"], versions)
    client.set_model_version_tag("fraud-detector", "2", "validated", "yes")
    check("model version tag", client.get_model_version("fraud-detector", "2").tags == {"validated": "yes"})
    client.delete_registered_model_alias("fraud-detector", "champion")
    check("delete alias", client.get_registered_model("fraud-detector").aliases == {})
    uri = client.get_model_version_download_uri("fraud-detector", "2")
    check("download uri", uri.endswith(f"{parent_id}/artifacts/model"), uri)

    # Multipart upload through the proxy (forced on with small thresholds): 3 parts of 400 bytes.
    os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] = "true"
    os.environ["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"] = "1000"
    os.environ["MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE"] = "400"
    payload = bytes((index * 7) % 251 for index in range(1100))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "large.bin")
        with open(path, "wb") as handle:
            handle.write(payload)
        client.log_artifact(parent_id, path, artifact_path="large")
        local = client.download_artifacts(parent_id, "large/large.bin", directory + "/out")
        with open(local, "rb") as handle:
            check("multipart upload round trip", handle.read() == payload)
    for name in ("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE"):
        os.environ.pop(name)

    # MLflow 3 model logging, registration by alias and loading for prediction.
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    features = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    labels = [0, 0, 0, 1, 1, 1]
    classifier = LogisticRegression().fit(features, labels)
    with mlflow.start_run(run_name="sklearn") as sklearn_run:
        logged = mlflow.sklearn.log_model(classifier, name="model")
    check("log_model gives a models:/ uri", logged.model_uri.startswith("models:/m-"), logged.model_uri)
    check("logged model is READY", client.get_logged_model(logged.model_id).status.to_proto() == 2)
    version = mlflow.register_model(f"runs:/{sklearn_run.info.run_id}/model", "classifier")
    client.set_registered_model_alias("classifier", "champion", version.version)
    check("version by alias comes from the logged model", client.get_model_version_by_alias("classifier", "champion").source == logged.model_uri)
    loaded = mlflow.pyfunc.load_model("models:/classifier@champion")
    check("pyfunc predictions equal the original model's", list(loaded.predict(features)) == list(classifier.predict(features)))

    client.delete_run(child_id)
    check("delete_run", client.get_run(child_id).info.lifecycle_stage == "deleted")

    drop_in_checks(client)


def drop_in_checks(client):
    """What MLflow's own tests showed missing: each cause of a failure there has a check here."""
    import requests

    base = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
    # The 3.x client adds `tag.mlflow.prompt.is_prompt != 'true'`: an absent tag counts as different.
    names = {model.name for model in client.search_registered_models()}
    check("search_registered_models finds ordinary models", {"fraud-detector", "classifier"} <= names, names)
    source = client.get_model_version("fraud-detector", "2").source
    found = client.search_model_versions(f"source_path = '{source}'")
    check("search_model_versions by source_path", {(item.name, item.version) for item in found} == {("fraud-detector", "1"), ("fraud-detector", "2")}, found)
    # Default orders: versions by last update (newest first); experiments newest created first.
    versions = client.search_model_versions("name = 'fraud-detector'")
    check("model versions newest update first", [item.version for item in versions] == ["2", "1"], [item.version for item in versions])
    newest = client.create_experiment("acceptance-newest")
    experiments = client.search_experiments()
    check("experiments newest first", experiments[0].experiment_id == newest, [item.name for item in experiments])
    # Deleting a version touches its model's last update.
    before = client.get_registered_model("classifier").last_updated_timestamp
    extra = client.create_model_version("classifier", client.get_model_version("classifier", "1").source)
    client.delete_model_version("classifier", extra.version)
    check("deleting a version updates its model", client.get_registered_model("classifier").last_updated_timestamp >= before)
    again = client.create_model_version("classifier", client.get_model_version("classifier", "1").source)
    check("a deleted version's number is not given again", int(again.version) == int(extra.version) + 1, (extra.version, again.version))
    client.delete_model_version("classifier", again.version)
    # Routes older clients and tools use.
    staged = client.transition_model_version_stage("fraud-detector", "1", "Staging")
    check("transition-stage", staged.current_stage == "Staging", staged.current_stage)
    latest = {(item.version, item.current_stage) for item in client.get_registered_model("fraud-detector").latest_versions}
    check("latest_versions per stage", latest == {("1", "Staging"), ("2", "None")}, latest)
    client.set_experiment_tag(newest, "temporary", "yes")
    client.delete_experiment_tag(newest, "temporary")
    check("delete-experiment-tag", "temporary" not in client.get_experiment(newest).tags, client.get_experiment(newest).tags)
    run = client.search_runs([client.get_experiment_by_name("acceptance").experiment_id], "attributes.run_name = 'parent'")[0]
    listed = requests.get(f"{base}/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id, "path": "model"}, timeout=10).json()
    check("GET artifacts/list", {item["path"] for item in listed.get("files", [])} == {"model/MLmodel", "model/weights.bin"}, listed)
    # The web UI's routes (under /ajax-api/), and a doubled slash as MLflow's clients send it.
    history = requests.get(f"{base}/ajax-api/2.0/mlflow/metrics/get-history-bulk", params={"run_id": [run.info.run_id], "metric_key": "loss"}, timeout=10).json()
    check("get-history-bulk", [point["run_id"] for point in history.get("metrics", [])][:1] == [run.info.run_id], history)
    sampled = requests.get(f"{base}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval", params={"run_ids": [run.info.run_id], "metric_key": "loss", "max_results": 2}, timeout=10).json()
    check("get-history-bulk-interval", len(sampled.get("metrics", [])) >= 1, sampled)
    uploaded = requests.post(f"{base}/ajax-api/2.0/mlflow/upload-artifact", params={"run_uuid": run.info.run_id, "path": "ui/note.txt"}, data="from the web UI", timeout=10)
    fetched = requests.get(f"{base}//get-artifact", params={"run_uuid": run.info.run_id, "path": "ui/note.txt"}, timeout=10)
    check("upload-artifact, then //get-artifact", uploaded.status_code == 200 and fetched.text == "from the web UI", (uploaded.text, fetched.text))
    check("GET /health", requests.get(f"{base}/health", timeout=10).text == "OK")
    check("GET /version", requests.get(f"{base}/version", timeout=10).text.startswith("3."))
    unknown = requests.get(f"{base}/api/3.0/mlflow/no-such-route", timeout=10)
    check("unknown 3.0 route in MLflow's shape", unknown.status_code == 404 and unknown.json().get("error_code") == "ENDPOINT_NOT_FOUND", unknown.text)
    # Proxied downloads carry MLflow's headers.
    artifact_root = run.info.artifact_uri.replace("mlflow-artifacts:", "")
    download = requests.get(f"{base}/api/2.0/mlflow-artifacts/artifacts{artifact_root}/notes/readme.txt", timeout=10)
    check(
        "download headers",
        download.headers.get("Content-Type", "").startswith("text/plain")
        and download.headers.get("Content-Disposition") == "attachment; filename=readme.txt"
        and download.headers.get("X-Content-Type-Options") == "nosniff",
        dict(download.headers),
    )
    # A version source that escapes or points at another server is refused.
    for bad in ("mlflow-artifacts://host/models/../../../etc", "http://elsewhere.example/model"):
        try:
            client.create_model_version("classifier", bad)
            check(f"source {bad} refused", False, "accepted")
        except Exception as error:  # the client raises MlflowException with the server's message
            check(f"source {bad} refused", "INVALID_PARAMETER_VALUE" in str(error), str(error))

    # MLflow 3 logged models: metrics logged with a model id are the model's; log_model does
    # not duplicate the run's metric history; registration from models:/ keeps the run id.
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_experiment("acceptance")
    features = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(features, [0, 0, 1, 1])
    with mlflow.start_run(run_name="history") as history_run:
        for value in range(50):
            mlflow.log_metric("score", float(value))
        logged = mlflow.sklearn.log_model(model, name="model")
        mlflow.log_metric("accuracy", 0.75, model_id=logged.model_id)
    points = client.get_metric_history(history_run.info.run_id, "score")
    check("metric history after log_model", len(points) == 50, len(points))
    metrics = {metric.key: metric.value for metric in client.get_logged_model(logged.model_id).metrics}
    check("logged model metrics", metrics.get("accuracy") == 0.75, metrics)
    registered = mlflow.register_model(logged.model_uri, "from-logged-model")
    check("version from models:/ has its run id", registered.run_id == history_run.info.run_id, registered.run_id)
    listed = json.loads(client.get_logged_model(logged.model_id).tags.get("mlflow.modelVersions", "[]"))
    # The server lists the registration and MLflow's client appends it again, as with MLflow's own server.
    check("registration listed on the logged model", ("from-logged-model", "1") in {(item["name"], str(item["version"])) for item in listed}, listed)
    with mlflow.start_run(run_name="evaluation") as evaluation_run:
        client.log_inputs(evaluation_run.info.run_id, models=[mlflow.entities.LoggedModelInput(logged.model_id)])
    inputs = client.get_run(evaluation_run.info.run_id).inputs.model_inputs
    check("log_inputs with models", [item.model_id for item in inputs] == [logged.model_id], inputs)
    prompts(client)


def prompts(client):
    """MLflow's prompt registry, through `mlflow.genai` as its documentation uses it."""
    first = mlflow.genai.register_prompt(name="summarize", template="Summarize: {{text}}", commit_message="first")
    second = mlflow.genai.register_prompt(name="summarize", template="Summarize in {{words}} words: {{text}}", tags={"author": "ada"})
    check("register_prompt versions", (first.version, second.version) == (1, 2), (first.version, second.version))
    loaded = mlflow.genai.load_prompt("prompts:/summarize/1")
    check("load_prompt by version", loaded.template == "Summarize: {{text}}" and loaded.format(text="hi") == "Summarize: hi", loaded.template)
    latest = mlflow.genai.load_prompt("prompts:/summarize@latest")
    check("load_prompt @latest", latest.version == 2, latest.version)
    mlflow.genai.set_prompt_alias("summarize", alias="production", version=1)
    production = mlflow.genai.load_prompt("prompts:/summarize@production")
    check("load_prompt by alias", production.version == 1 and production.aliases == ["production"], (production.version, production.aliases))
    try:
        mlflow.genai.set_prompt_alias("summarize", alias="latest", version=1)
        check("the alias `latest` is reserved", False, "accepted")
    except mlflow.exceptions.MlflowException as error:
        check("the alias `latest` is reserved", "reserved" in str(error), str(error))
    chat = mlflow.genai.register_prompt(
        name="support-chat",
        template=[{"role": "system", "content": "You help with {{product}}."}, {"role": "user", "content": "{{question}}"}],
    )
    messages = mlflow.genai.load_prompt(f"prompts:/support-chat/{chat.version}").format(product="Causeway", question="How?")
    check("chat prompt", messages == [{"role": "system", "content": "You help with Causeway."}, {"role": "user", "content": "How?"}], messages)
    names = sorted(prompt.name for prompt in mlflow.genai.search_prompts())
    check("search_prompts", names == ["summarize", "support-chat"], names)
    models = {model.name for model in client.search_registered_models()}
    check("prompts are not models", not ({"summarize", "support-chat"} & models), models)
    versions = {version.name for version in client.search_model_versions()}
    check("prompt versions are not model versions", versions and not ({"summarize", "support-chat"} & versions), versions)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        checks.append(("client calls", False, traceback.format_exc()))
    failed = [item for item in checks if not item[1]]
    for name, passed, detail in checks:
        print(("ok   " if passed else "FAIL ") + name + ("" if passed else f": {detail}"))
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)
