"""What a new user logs with the official MLflow client (pinned in requirements.txt), unmodified:
scikit-learn's autologging on a public dataset (the Wisconsin breast-cancer table, which ships
inside scikit-learn), a hyperparameter search with child runs, a per-epoch loss curve, the
training table as a dataset input, and HTML, JSON and text artifacts. The web UI test opens
the pages these runs make. Prints one JSON line: the experiment id and the run ids.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python tests/mlflow/ui_trial.py
"""

import json
import sys
import warnings

import mlflow
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore")

REPORT = """<!doctype html>
<html><head><meta charset="utf-8"><title>Holdout report</title>
<style>body { font-family: sans-serif; color: rgb(20, 60, 120); } td { padding: 2px 8px; }</style>
</head><body><h1 id="title">Holdout report</h1><table>{rows}</table></body></html>"""


def main():
    frame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns=["target"])
    train_x, test_x, train_y, test_y = train_test_split(features, frame["target"], test_size=0.25, random_state=7)
    mlflow.set_experiment("breast-cancer")
    experiment = mlflow.get_experiment_by_name("breast-cancer").experiment_id
    mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)
    training = mlflow.data.from_pandas(frame, name="breast-cancer", targets="target")
    runs = {}
    with mlflow.start_run(run_name="search") as parent:
        runs["parent"] = parent.info.run_id
        mlflow.log_input(training, context="training")
        children = []
        for strength in [0.01, 0.1, 1.0]:
            with mlflow.start_run(run_name=f"logistic-C{strength}", nested=True) as child:
                model = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=500))
                model.fit(train_x, train_y)
                mlflow.log_input(training, context="training")
                mlflow.log_metric("holdout_auc", roc_auc_score(test_y, model.predict_proba(test_x)[:, 1]))
                children.append(child.info.run_id)
        runs["children"] = children
    mlflow.sklearn.autolog(disable=True)
    with mlflow.start_run(run_name="sgd-epochs") as run:
        runs["epochs"] = run.info.run_id
        scaler = StandardScaler().fit(train_x)
        model = SGDClassifier(loss="log_loss", random_state=7)
        mlflow.log_params({"loss": "log_loss", "epochs": 40, "scaler": "standard"})
        mlflow.set_tag("team", "oncology")
        mlflow.log_input(training, context="training")
        for epoch in range(40):
            model.partial_fit(scaler.transform(train_x), train_y, classes=np.array([0, 1]))
            probabilities = model.predict_proba(scaler.transform(test_x))[:, 1]
            mlflow.log_metric("holdout_log_loss", log_loss(test_y, probabilities), step=epoch)
        auc = roc_auc_score(test_y, probabilities)
        mlflow.log_metric("holdout_auc", auc)
        rows = "".join(f"<tr><td>{name}</td><td>{value:.4f}</td></tr>" for name, value in [("auc", auc)])
        mlflow.log_text(REPORT.replace("{rows}", rows), "reports/holdout.html")
        mlflow.log_dict({"auc": auc, "rows": len(test_x)}, "reports/holdout.json")
        mlflow.log_text("\n".join(features.columns), "features.txt")
    print(json.dumps({"experiment": experiment, "runs": runs}))


if __name__ == "__main__":
    sys.exit(main())
