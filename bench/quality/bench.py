"""Model quality on public data nobody here wrote: Causeway's built-in trainer, driven the way a
new user drives it, against LightGBM with its defaults, on the same rows.

    python bench/quality/bench.py --causeway target/release/causeway [--seeds 5] [--quick]

For every dataset of tests/data/datasets.py (telecom churn, credit with missing values, housing
prices, penguin species) and every seed, the rows are shuffled by the seed and split 75/25.
Causeway: `causeway init --from train.csv --label LABEL [--positive VALUE]` drafts the project
and ingests the training file, `causeway train --holdout test.csv` trains on every training row
and evaluates on the test file, and `causeway predict test.csv` scores it; the metric is computed
here, with scikit-learn, from the written predictions. LightGBM 4.7.0: `LGBMClassifier()` /
`LGBMRegressor()` with every default (text columns as pandas categoricals, which LightGBM splits
natively), fitted on the same training rows. The metric is test ROC-AUC (binary), accuracy
(multi-class) or RMSE (regression); the table prints the mean over the seeds, the difference,
and the goal: ROC-AUC within 0.005, RMSE within 2 %, accuracy within 1 point.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import lightgbm
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score, mean_squared_error

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data"))
import datasets  # noqa: E402  (tests/data/datasets.py)


def split(frame, seed):
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(round(len(frame) * 0.75))
    return frame.iloc[order[:cut]].reset_index(drop=True), frame.iloc[order[cut:]].reset_index(drop=True)


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def causeway(binary, spec, train, test, directory, trainer=None):
    train_path = os.path.join(directory, "train.csv")
    test_path = os.path.join(directory, "test.csv")
    output = os.path.join(directory, "predictions.csv")
    train.to_csv(train_path, index=False)
    test.to_csv(test_path, index=False)
    project = os.path.join(directory, "project")
    command = [binary, "init", "--from", train_path, "--label", spec["label"], "--dir", project]
    if spec["positive"]:
        command += ["--positive", spec["positive"]]
    run(command)
    if trainer:
        config = os.path.join(project, "causeway.toml")
        with open(config) as handle:
            text = handle.read()
        with open(config, "w") as handle:
            handle.write(text.replace("seed = 42\n", f"seed = 42\ntrainer = {trainer}\n", 1))
    started = time.perf_counter()
    run([binary, "train", "--holdout", test_path, "--dir", project])
    seconds = time.perf_counter() - started
    run([binary, "predict", test_path, "--output", output, "--version", "1", "--dir", project])
    predictions = pd.read_csv(output)
    truth = test[spec["label"]]
    if spec["task"] == "binary":
        return roc_auc_score(truth == spec["positive"], predictions["score"]), seconds
    if spec["task"] == "regression":
        return mean_squared_error(truth, predictions["prediction"]) ** 0.5, seconds
    return accuracy_score(truth, predictions["prediction"].astype(str)), seconds


def lightgbm_defaults(spec, train, test):
    def features(frame, categories=None):
        x = frame.drop(columns=[spec["label"]]).copy()
        for column in x.columns:
            if x[column].dtype == object or str(x[column].dtype).startswith("str"):
                values = categories[column] if categories else sorted(x[column].dropna().unique())
                # A test category the training rows never had is missing, as LightGBM treats it.
                x[column] = pd.Categorical(x[column].where(x[column].isin(values)), categories=values)
        return x

    x_train = features(train)
    categories = {column: list(x_train[column].cat.categories) for column in x_train.columns if str(x_train[column].dtype) == "category"}
    x_test = features(test, categories)
    started = time.perf_counter()
    if spec["task"] == "regression":
        model = lightgbm.LGBMRegressor(verbose=-1, n_jobs=2).fit(x_train, train[spec["label"]])
        value = mean_squared_error(test[spec["label"]], model.predict(x_test)) ** 0.5
    elif spec["task"] == "binary":
        model = lightgbm.LGBMClassifier(verbose=-1, n_jobs=2).fit(x_train, train[spec["label"]] == spec["positive"])
        value = roc_auc_score(test[spec["label"]] == spec["positive"], model.predict_proba(x_test)[:, 1])
    else:
        model = lightgbm.LGBMClassifier(verbose=-1, n_jobs=2).fit(x_train, train[spec["label"]])
        value = accuracy_score(test[spec["label"]], model.predict(x_test))
    return value, time.perf_counter() - started


def verdict(task, ours, theirs):
    if task == "binary":
        return ours - theirs, "within 0.005", ours >= theirs - 0.005
    if task == "regression":
        return ours / theirs - 1.0, "within 2 %", ours <= theirs * 1.02
    return ours - theirs, "within 1 point", ours >= theirs - 0.01


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--causeway", required=True, help="the causeway binary")
    parser.add_argument("--seeds", type=int, default=5, help="splits per dataset (seeds 1..N)")
    parser.add_argument("--quick", action="store_true", help="two seeds (CI)")
    parser.add_argument("--trainer", help="a [model] trainer table to try instead of the default, e.g. '{ family = \"gbdt\", bins = 255 }'")
    parser.add_argument("--only", help="one dataset by name")
    arguments = parser.parse_args()
    seeds = range(1, (2 if arguments.quick else arguments.seeds) + 1)
    names = {"binary": "ROC-AUC", "regression": "RMSE", "multiclass": "accuracy"}
    rows = []
    for spec in datasets.DATASETS:
        if arguments.only and spec["name"] != arguments.only:
            continue
        frame = datasets.load(spec)
        ours, theirs, our_seconds, their_seconds = [], [], [], []
        for seed in seeds:
            train, test = split(frame, seed)
            with tempfile.TemporaryDirectory() as directory:
                value, seconds = causeway(arguments.causeway, spec, train, test, directory, arguments.trainer)
            ours.append(value)
            our_seconds.append(seconds)
            value, seconds = lightgbm_defaults(spec, train, test)
            theirs.append(value)
            their_seconds.append(seconds)
            print(f"{spec['name']} seed {seed}: Causeway {ours[-1]:.4f}, LightGBM {theirs[-1]:.4f}", file=sys.stderr)
        mean_ours, mean_theirs = float(np.mean(ours)), float(np.mean(theirs))
        difference, goal, passed = verdict(spec["task"], mean_ours, mean_theirs)
        rows.append((spec, len(frame), mean_ours, mean_theirs, difference, goal, passed, np.median(our_seconds), np.median(their_seconds)))
    print(f"\nmean over {len(seeds)} seeded 75/25 splits (test rows never seen by either trainer)\n")
    header = f"{'dataset':<10} {'rows':>5} {'task':<10} {'metric':<8} {'Causeway':>11} {'LightGBM':>11} {'difference':>11} {'goal':<15} {'train s':>8} {'LGBM s':>7}"
    print(header)
    print("-" * len(header))
    for spec, count, ours, theirs, difference, goal, passed, our_time, their_time in rows:
        shown = f"{difference:+.2%}" if spec["task"] == "regression" else f"{difference:+.4f}"
        mark = "meets" if passed else "MISSES"
        print(f"{spec['name']:<10} {count:>5} {spec['task']:<10} {names[spec['task']]:<8} {ours:>11.4f} {theirs:>11.4f} {shown:>11} {goal + ' ' + mark:<15} {our_time:>8.2f} {their_time:>7.2f}")
    print("\n(train s: `causeway train` wall time, process start and the logistic/linear baseline included; LGBM s: `fit` alone)")


if __name__ == "__main__":
    main()
