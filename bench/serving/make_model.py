"""The serving bench's model and requests: binary:logistic, 300 trees of depth 6 on 30 features
(seeded, as bench/models trains it), saved as XGBoost JSON, with MLServer's model settings and
OIP v2 request bodies of 1 and 64 rows (one FP32 [rows, 30] tensor).

    python bench/serving/make_model.py DIRECTORY
"""

import json
import os
import sys

import numpy as np
import xgboost

SEED = 20261123
FEATURES, TREES, DEPTH = 30, 300, 6


def main():
    directory = sys.argv[1]
    rng = np.random.default_rng(SEED)
    x_train = rng.normal(size=(50_000, FEATURES))
    signal = x_train[:, :10].sum(axis=1) + x_train[:, 10] * x_train[:, 11]
    y = (signal + rng.normal(size=len(signal)) > 0).astype(int)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": DEPTH, "eta": 0.1, "tree_method": "hist", "seed": SEED,
         "nthread": 2},
        xgboost.DMatrix(x_train, label=y), TREES)
    model_directory = os.path.join(directory, "mlserver", "bench")
    os.makedirs(model_directory, exist_ok=True)
    booster.save_model(os.path.join(directory, "bench.json"))
    booster.save_model(os.path.join(model_directory, "model.json"))
    with open(os.path.join(model_directory, "model-settings.json"), "w") as out:
        json.dump({"name": "bench", "implementation": "mlserver_xgboost.XGBoostModel",
                   "parameters": {"uri": "./model.json"}}, out)
    rows = rng.normal(size=(64, FEATURES)).astype(np.float32)
    for count in (1, 64):
        body = {"inputs": [{"name": "input", "shape": [count, FEATURES], "datatype": "FP32",
                            "data": [float(value) for value in rows[:count].ravel()]}]}
        with open(os.path.join(directory, f"rows-{count}.json"), "w") as out:
            json.dump(body, out)
    expected = booster.inplace_predict(rows)
    with open(os.path.join(directory, "expected.json"), "w") as out:
        json.dump([float(value) for value in expected], out)


if __name__ == "__main__":
    main()
