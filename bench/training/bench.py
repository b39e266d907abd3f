"""Causeway's GBDT trainer against LightGBM on the same rows, in one run: wall time (binning
included) and ROC-AUC on a held-out test set.

    python bench/training/bench.py --trainer target/release/examples/gbdt_training [--quick] [--json out.json]

Data: 1,000,000 training rows x 30 features (200,000 with --quick), seeded: a non-linear signal
(sums, an interaction, a threshold and a sine), 2% missing values, label noise; 200,000 test rows.
Both trainers get the same budget: binary log loss, the same rounds, depth 6, at most 63
leaves, 255 bins, learning rate 0.1, L2 1.0, min hessian 1.0, two threads, no early stopping.
Times are medians of 3 runs (1 with --quick).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import lightgbm
import numpy as np
from sklearn.metrics import roc_auc_score

SEED = 20261124


def make_rows(rng, count, features):
    x = rng.normal(size=(count, features))
    clean = x.copy()
    x[rng.random(size=x.shape) < 0.02] = np.nan
    signal = (
        clean[:, :8].sum(axis=1) * 0.5
        + clean[:, 8] * clean[:, 9]
        + 1.5 * (clean[:, 10] > 0.7)
        + np.sin(2 * clean[:, 11])
        - 0.8 * np.abs(clean[:, 12])
    )
    y = (signal + rng.normal(scale=1.0, size=count) > 0).astype(np.float64)
    return x, y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainer", required=True, help="the gbdt_training example binary")
    parser.add_argument("--quick", action="store_true", help="200,000 rows and one run")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = 200_000 if args.quick else 1_000_000
    repeats = 1 if args.quick else 3
    features, rounds, depth, leaves, bins = 30, 100, 6, 63, 255
    rng = np.random.default_rng(SEED)
    x, y = make_rows(rng, rows, features)
    x_test, y_test = make_rows(rng, 200_000, features)

    lightgbm_params = {
        "objective": "binary", "num_leaves": leaves, "max_depth": depth, "learning_rate": 0.1,
        "max_bin": bins, "lambda_l2": 1.0, "min_sum_hessian_in_leaf": 1.0, "min_data_in_leaf": 1,
        "num_threads": 2, "seed": SEED, "deterministic": True, "force_row_wise": False, "verbose": -1,
    }
    lightgbm_times = []
    for _ in range(repeats):
        started = time.perf_counter()
        booster = lightgbm.train(lightgbm_params, lightgbm.Dataset(x, label=y, params={"max_bin": bins}),
                                 num_boost_round=rounds)
        lightgbm_times.append(time.perf_counter() - started)
    lightgbm_auc = roc_auc_score(y_test, booster.predict(x_test))

    causeway_params = {
        "rounds": rounds, "learning_rate": 0.1, "max_depth": depth, "max_leaves": leaves, "bins": bins,
        "lambda": 1.0, "min_child_weight": 1.0, "min_child_rows": 1.0, "scale_pos_weight": 1.0,
        "early_stopping_rounds": None,
    }
    causeway_times = []
    with tempfile.TemporaryDirectory() as directory:
        paths = {name: os.path.join(directory, f"{name}.f64") for name in ("train", "labels", "test", "scores")}
        np.ascontiguousarray(x, dtype="<f8").tofile(paths["train"])
        np.ascontiguousarray(y, dtype="<f8").tofile(paths["labels"])
        np.ascontiguousarray(x_test, dtype="<f8").tofile(paths["test"])
        environment = dict(os.environ, RAYON_NUM_THREADS="2")
        for _ in range(repeats):
            output = subprocess.run(
                [args.trainer, paths["train"], paths["labels"], paths["test"], str(features), paths["scores"],
                 json.dumps(causeway_params)],
                check=True, capture_output=True, text=True, env=environment).stdout
            causeway_times.append(json.loads(output)["seconds"])
        causeway_scores = np.fromfile(paths["scores"], dtype="<f8")
    causeway_auc = roc_auc_score(y_test, causeway_scores)

    results = {
        "rows": rows, "features": features, "rounds": rounds, "lightgbm": lightgbm.__version__,
        "lightgbm_seconds": statistics.median(lightgbm_times), "causeway_seconds": statistics.median(causeway_times),
        "lightgbm_auc": lightgbm_auc, "causeway_auc": causeway_auc,
    }
    results["time_ratio"] = results["causeway_seconds"] / results["lightgbm_seconds"]
    results["auc_difference"] = causeway_auc - lightgbm_auc
    print(f"training {rows:,} rows x {features} features, {rounds} rounds (2 threads)")
    print(f"  LightGBM {lightgbm.__version__}: {results['lightgbm_seconds']:.2f} s, ROC-AUC {lightgbm_auc:.4f}")
    print(f"  Causeway:        {results['causeway_seconds']:.2f} s, ROC-AUC {causeway_auc:.4f}")
    time_goal = results["time_ratio"] <= 2.0
    auc_goal = abs(results["auc_difference"]) <= 0.005 or results["auc_difference"] > 0
    print(f"  time {results['time_ratio']:.2f}x LightGBM (goal <= 2x: {'met' if time_goal else 'NOT met'}); "
          f"AUC difference {results['auc_difference']:+.4f} (goal within 0.005: {'met' if auc_goal else 'NOT met'})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
