"""Causeway's compiled tree engine against XGBoost's own `inplace_predict` on the same model and
rows, in one run: batch throughput on 1 and 2 threads (1,000,000 rows) and single-row latency.

    python bench/models/bench.py --scorer target/release/examples/tree_scoring [--quick] [--json out.json]

The model is the issue's: binary:logistic, 300 trees of depth 6 on 30 features (trained here,
seeded). Medians of 3 runs for batches; the single-row figure is the median over 20,000 calls.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import xgboost

SEED = 20261123


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scorer", required=True, help="the tree_scoring example binary")
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = 100_000 if args.quick else 1_000_000
    features, trees, depth = 30, 300, 6
    rng = np.random.default_rng(SEED)
    x_train = rng.normal(size=(200_000, features))
    x_train[rng.random(size=x_train.shape) < 0.02] = np.nan
    signal = np.nan_to_num(x_train[:, :10]).sum(axis=1) + np.nan_to_num(x_train[:, 10]) * np.nan_to_num(x_train[:, 11])
    y = (signal + rng.normal(size=len(signal)) > 0).astype(int)
    print(f"training XGBoost: {trees} trees, depth {depth}, {features} features ...", file=sys.stderr, flush=True)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "tree_method": "hist", "seed": SEED, "nthread": 2},
        xgboost.DMatrix(x_train, label=y), trees)
    x = rng.normal(size=(rows, features))
    x[rng.random(size=x.shape) < 0.02] = np.nan
    x32 = np.ascontiguousarray(x, dtype=np.float32)

    results = {"rows": rows, "trees": trees, "depth": depth, "features": features, "xgboost": xgboost.__version__}
    for threads in (1, 2):
        booster.set_param({"nthread": threads})
        booster.inplace_predict(x32[:1000])  # warm up
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            predictions = booster.inplace_predict(x32)
            timings.append(time.perf_counter() - started)
        results[f"xgboost_rows_per_s_{threads}_threads"] = rows / statistics.median(timings)
    booster.set_param({"nthread": 1})
    latencies = []
    for index in range(2_000):
        row = x32[index:index + 1]
        started = time.perf_counter()
        booster.inplace_predict(row)
        latencies.append((time.perf_counter() - started) * 1e6)
    results["xgboost_single_row_median_us"] = statistics.median(latencies)

    with tempfile.TemporaryDirectory(prefix="causeway-tree-bench-") as directory:
        model = os.path.join(directory, "model.ubj")
        booster.save_model(model)
        matrix = os.path.join(directory, "rows.f64")
        x.astype("<f8").tofile(matrix)
        reference = os.path.join(directory, "reference.f64")
        predictions.astype("<f8").tofile(reference)
        print("timing Causeway ...", file=sys.stderr, flush=True)
        output = subprocess.run([args.scorer, model, matrix, str(rows), str(features), reference],
                                check=True, capture_output=True, text=True).stdout
    causeway = json.loads(output)
    results["causeway"] = causeway
    ratios = {
        "batch, 1 thread (causeway / xgboost, goal >= 1)": causeway["batch_rows_per_s_1_threads"] / results["xgboost_rows_per_s_1_threads"],
        "batch, 2 threads (causeway / xgboost, goal >= 1)": causeway["batch_rows_per_s_2_threads"] / results["xgboost_rows_per_s_2_threads"],
        "single row (xgboost / causeway)": results["xgboost_single_row_median_us"] / causeway["single_row_median_us"],
    }
    results["ratios"] = ratios
    print(f"{'measure':<34}{'causeway':>14}{'xgboost':>14}")
    print(f"{'batch rows/s, 1 thread':<34}{causeway['batch_rows_per_s_1_threads']:>14.4g}{results['xgboost_rows_per_s_1_threads']:>14.4g}")
    print(f"{'batch rows/s, 2 threads':<34}{causeway['batch_rows_per_s_2_threads']:>14.4g}{results['xgboost_rows_per_s_2_threads']:>14.4g}")
    print(f"{'single row, median (us)':<34}{causeway['single_row_median_us']:>14.4g}{results['xgboost_single_row_median_us']:>14.4g}")
    print(f"{'single row, p99 (us)':<34}{causeway['single_row_p99_us']:>14.4g}{'':>14}")
    print(f"largest difference from XGBoost's predictions: {causeway['max_abs_difference_from_library']:.3g}")
    for label, ratio in ratios.items():
        print(f"ratio {label}: {ratio:.2f}x")
    print(f"single-row goal (<= 5 us median): {'met' if causeway['single_row_median_us'] <= 5 else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
