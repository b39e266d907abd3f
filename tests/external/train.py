"""A researcher's own training script, as `causeway train --external` runs it (used by the CLI
test and shown in the README).

Causeway passes everything through the environment: the encoded training rows
(CAUSEWAY_TRAIN_DATA, CSV with the CAUSEWAY_FEATURES columns in order and the
CAUSEWAY_LABEL_COLUMN), the seed, where to write the model (CAUSEWAY_MODEL_DIR), and the MLflow
tracking URI and run id, so `mlflow.start_run()` resumes the run Causeway started.
"""

import os

import mlflow
import pandas as pd
import xgboost as xgb

data = pd.read_csv(os.environ["CAUSEWAY_TRAIN_DATA"])
features = os.environ["CAUSEWAY_FEATURES"].split(",")
label = os.environ["CAUSEWAY_LABEL_COLUMN"]
params = {
    "objective": "binary:logistic",
    "max_depth": 4,
    "eta": 0.2,
    "seed": int(os.environ["CAUSEWAY_SEED"]),
    "nthread": 1,
}
rounds = int(os.environ.get("ROUNDS", "40"))

with mlflow.start_run():  # resumes the run Causeway started (MLFLOW_RUN_ID)
    mlflow.log_params({**params, "rounds": rounds})
    train = xgb.DMatrix(data[features], label=data[label], feature_names=features)
    history = {}
    booster = xgb.train(params, train, num_boost_round=rounds, evals=[(train, "train")],
                        evals_result=history, verbose_eval=False)
    for step, value in enumerate(history["train"]["logloss"]):
        mlflow.log_metric("train_logloss", value, step=step)
    booster.save_model(os.path.join(os.environ["CAUSEWAY_MODEL_DIR"], "model.json"))
    print(f"trained {rounds} rounds on {len(data)} rows")
