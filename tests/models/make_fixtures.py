"""Trains small XGBoost, LightGBM and scikit-learn models with pinned versions, saves them in their
native formats and as ONNX, and writes the reference predictions Causeway's importers must
reproduce (the libraries' own; onnxruntime's for ONNX files).

    python tests/models/make_fixtures.py OUT_DIR

OUT_DIR gets one model file per case plus `cases.json`: for every case the model file, its format,
the input rows (null = missing) and the library's own predictions (`output`, after the objective's
transform, one list per row) and raw scores (`margin`). Everything is seeded, so two runs write the
same files. The Rust tests in crates/causeway-models/tests/ run this script and compare.
"""

import json
import os
import re
import sys

import lightgbm
import numpy as np
import xgboost

SEED = 20261123


def rows_for_json(matrix):
    return [[None if np.isnan(value) else float(value) for value in row] for row in matrix]


def as_rows(values):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    return array.tolist()


def data(rng, rows, features, missing=0.05):
    x = rng.normal(size=(rows, features))
    x[rng.random(size=x.shape) < missing] = np.nan
    return x


def binary_label(x, rng):
    signal = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) ** 2 - np.nan_to_num(x[:, 2]) * np.nan_to_num(x[:, 3])
    return (signal + 0.3 * rng.normal(size=len(x)) > 0.4).astype(int)


def xgboost_cases(out, rng):
    cases = []
    x = data(rng, 600, 8)
    y = binary_label(x, rng)
    test = data(rng, 200, 8)
    test[:5] = np.nan  # whole rows missing
    test[5, 0] = 1e30
    test[6, 0] = -1e30

    def add(name, booster, inputs, extension="json", dmatrix=None):
        path = os.path.join(out, f"{name}.{extension}")
        booster.save_model(path)
        matrix = dmatrix if dmatrix is not None else xgboost.DMatrix(inputs, missing=np.nan)
        cases.append({
            "name": name,
            "file": os.path.basename(path),
            "format": "xgboost",
            "rows": rows_for_json(inputs),
            "output": as_rows(booster.predict(matrix)),
            "margin": as_rows(booster.predict(matrix, output_margin=True)),
        })

    train = xgboost.DMatrix(x, label=y, missing=np.nan)
    params = {"max_depth": 4, "eta": 0.2, "seed": SEED, "nthread": 1}
    binary = xgboost.train({**params, "objective": "binary:logistic"}, train, 40)
    add("xgb_binary", binary, test)
    add("xgb_binary_ubj", binary, test, extension="ubj")
    add("xgb_logitraw", xgboost.train({**params, "objective": "binary:logitraw"}, train, 10), test)
    regression = xgboost.DMatrix(x, label=np.nan_to_num(x[:, 0]) * 3 + 1, missing=np.nan)
    add("xgb_regression", xgboost.train({**params, "objective": "reg:squarederror"}, regression, 30), test)
    counts = xgboost.DMatrix(x, label=rng.poisson(np.exp(np.nan_to_num(x[:, 0]) * 0.5)), missing=np.nan)
    add("xgb_poisson", xgboost.train({**params, "objective": "count:poisson"}, counts, 20), test)
    classes = np.digitize(np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]), [-0.7, 0.7])
    multi = xgboost.DMatrix(x, label=classes, missing=np.nan)
    add("xgb_multiclass", xgboost.train({**params, "objective": "multi:softprob", "num_class": 3}, multi, 15), test)
    add("xgb_dart", xgboost.train({**params, "objective": "binary:logistic", "booster": "dart", "rate_drop": 0.3, "seed": SEED}, train, 12), test)
    forest = {**params, "objective": "binary:logistic", "num_parallel_tree": 4, "subsample": 0.8, "colsample_bynode": 0.8}
    add("xgb_forest", xgboost.train(forest, train, 3), test)
    fit, valid = xgboost.DMatrix(x[:450], label=y[:450]), xgboost.DMatrix(x[450:], label=y[450:])
    stopped = xgboost.train({**params, "objective": "binary:logistic", "eta": 0.6}, fit, 300, evals=[(valid, "valid")],
                            early_stopping_rounds=5, verbose_eval=False)
    add("xgb_early_stopping", stopped, test)
    # A categorical feature (codes 0..7) with partition splits.
    codes = rng.integers(0, 8, size=600).astype(np.float64)
    xc = np.column_stack([x[:, :3], codes])
    yc = (np.isin(codes, [1, 3, 4]) ^ (np.nan_to_num(x[:, 0]) > 0.5)).astype(int)
    test_codes = np.column_stack([test[:, :3], rng.integers(-1, 10, size=200).astype(np.float64)])
    test_codes[7, 3] = np.nan
    types = ["q", "q", "q", "c"]
    categorical = xgboost.DMatrix(xc, label=yc, feature_types=types, enable_categorical=True)
    cat_model = xgboost.train({**params, "objective": "binary:logistic", "tree_method": "hist", "max_cat_to_onehot": 1}, categorical, 20)
    # Codes outside the training range are legal input: XGBoost sends them left.
    cat_test = xgboost.DMatrix(test_codes, feature_types=types, enable_categorical=True)
    add("xgb_categorical", cat_model, test_codes, dmatrix=cat_test)
    return cases


def lightgbm_cases(out, rng):
    cases = []
    x = data(rng, 800, 8)
    x[rng.random(size=x.shape) < 0.05] = 0.0
    y = binary_label(x, rng)
    test = data(rng, 200, 8)
    test[:5] = np.nan
    test[5:10] = 0.0
    test[10, 0] = 1e-36  # "zero" for zero_as_missing

    def add(name, booster, inputs):
        path = os.path.join(out, f"{name}.txt")
        booster.save_model(path)
        cases.append({
            "name": name,
            "file": os.path.basename(path),
            "format": "lightgbm",
            "rows": rows_for_json(inputs),
            "output": as_rows(booster.predict(inputs)),
            "margin": as_rows(booster.predict(inputs, raw_score=True)),
        })

    params = {"num_leaves": 15, "learning_rate": 0.2, "min_data_in_leaf": 10, "verbose": -1, "seed": SEED,
              "num_threads": 1, "deterministic": True}
    add("lgb_binary", lightgbm.train({**params, "objective": "binary"}, lightgbm.Dataset(x, y), 40), test)
    regression = lightgbm.Dataset(x, np.nan_to_num(x[:, 0]) * 3 + 1)
    add("lgb_regression", lightgbm.train({**params, "objective": "regression"}, regression, 30), test)
    classes = np.digitize(np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]), [-0.7, 0.7])
    add("lgb_multiclass", lightgbm.train({**params, "objective": "multiclass", "num_class": 3}, lightgbm.Dataset(x, classes), 15), test)
    add("lgb_zero_as_missing", lightgbm.train({**params, "objective": "regression", "zero_as_missing": True},
                                              lightgbm.Dataset(x, np.nan_to_num(x[:, 2]) + np.nan_to_num(x[:, 1])), 10), test)
    forest = {**params, "objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7}
    add("lgb_forest", lightgbm.train(forest, lightgbm.Dataset(x, y), 8), test)
    counts = rng.poisson(np.exp(np.nan_to_num(x[:, 0]) * 0.5))
    add("lgb_poisson", lightgbm.train({**params, "objective": "poisson"}, lightgbm.Dataset(x, counts), 20), test)
    codes = rng.integers(0, 12, size=800).astype(np.float64)
    xc = np.column_stack([x[:, :3], codes])
    yc = (np.isin(codes, [1, 3, 4, 9]) ^ (np.nan_to_num(x[:, 0]) > 0.5)).astype(int)
    test_codes = np.column_stack([test[:, :3], rng.integers(-1, 14, size=200).astype(np.float64)])
    test_codes[7, 3] = np.nan
    test_codes[8, 3] = 2.7
    categorical = lightgbm.Dataset(xc, yc, categorical_feature=[3])
    add("lgb_categorical", lightgbm.train({**params, "objective": "binary", "min_data_per_group": 5, "cat_smooth": 1}, categorical, 20), test_codes)
    # A threshold of infinity, which LightGBM writes as `inf` (every number goes left): the first
    # numeric split of the binary model made infinite, loaded back by LightGBM for its predictions.
    text = lightgbm.train({**params, "objective": "binary"}, lightgbm.Dataset(x, y), 10).model_to_string()
    first = re.search(r"threshold=(\S+)", text).group(1)
    edited = re.sub(r"tree_sizes=[^\n]*\n", "", text.replace(f"threshold={first}", "threshold=inf", 1))
    add("lgb_infinite_threshold", lightgbm.Booster(model_str=edited), test)
    # Linear trees are not supported by Causeway's engine: the test expects a clear error.
    linear = lightgbm.train({**params, "objective": "regression", "linear_tree": True},
                            lightgbm.Dataset(np.nan_to_num(x), np.nan_to_num(x[:, 0]) * 3), 2)
    linear.save_model(os.path.join(out, "lgb_linear.txt"))
    return cases


def pandas_cases(out, rng):
    """Models trained on a pandas DataFrame with a categorical column: LightGBM writes the
    categories as `pandas_categorical`, XGBoost 3 stores them in the model. `rows` hold the codes
    (pandas' category order), `text_rows` the categories themselves, `categories` the vocabulary."""
    import pandas as pd

    colours = ["blue", "green", "red", "violet"]

    def frame(count):
        data = pd.DataFrame({"colour": pd.Categorical(rng.choice(colours, count), categories=colours),
                             "size": rng.normal(size=count)})
        data.loc[rng.random(count) < 0.05, "colour"] = np.nan
        return data

    train, test = frame(600), frame(100)
    y = (train["colour"].isin(["red", "violet"]).to_numpy() ^ (train["size"].to_numpy() > 0.8)).astype(int)
    codes = np.column_stack([test["colour"].cat.codes.replace(-1, np.nan).to_numpy(dtype=np.float64), test["size"].to_numpy()])
    text_rows = [[None if pd.isna(colour) else colour, float(size)] for colour, size in zip(test["colour"], test["size"])]
    cases = []

    def add(name, file, output, margin):
        cases.append({"name": name, "file": file, "format": name.split("_")[0], "rows": rows_for_json(codes),
                      "output": as_rows(output), "margin": as_rows(margin), "text_rows": text_rows,
                      "categories": {"colour": colours}})

    booster = lightgbm.train({"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbose": -1,
                              "seed": SEED, "num_threads": 1, "deterministic": True, "min_data_per_group": 5,
                              "cat_smooth": 1}, lightgbm.Dataset(train, y), 20)
    booster.save_model(os.path.join(out, "lgb_pandas.txt"))
    add("lgb_pandas", "lgb_pandas.txt", booster.predict(test), booster.predict(test, raw_score=True))
    matrix = xgboost.DMatrix(train, label=y, enable_categorical=True)
    model = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "seed": SEED, "nthread": 1,
                           "tree_method": "hist", "max_cat_to_onehot": 1}, matrix, 20)
    model.save_model(os.path.join(out, "xgb_pandas.json"))
    test_matrix = xgboost.DMatrix(test, enable_categorical=True)
    add("xgb_pandas", "xgb_pandas.json", model.predict(test_matrix), model.predict(test_matrix, output_margin=True))
    return cases


def onnx_cases(out, rng):
    """Tree ensembles converted to ONNX by skl2onnx and onnxmltools; the reference is onnxruntime."""
    import lightgbm as lgb_sklearn
    import onnxmltools
    import onnxruntime
    from onnxmltools.convert.common.data_types import FloatTensorType as ToolsFloat
    from skl2onnx import to_onnx
    from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                                  HistGradientBoostingClassifier, RandomForestClassifier)

    cases = []
    x = data(rng, 500, 6, missing=0.0).astype(np.float32)
    y = binary_label(x, rng)
    test = data(rng, 200, 6, missing=0.03).astype(np.float32)

    def add(name, onnx_model, inputs, output_name):
        path = os.path.join(out, f"{name}.onnx")
        with open(path, "wb") as handle:
            handle.write(onnx_model.SerializeToString())
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        names = [output.name for output in session.get_outputs()]
        result = session.run(None, {input_name: inputs})[names.index(output_name)]
        result = np.asarray(result, dtype=np.float64)
        if result.ndim == 2 and result.shape[1] == 2:
            result = result[:, 1:]  # binary: the positive class, as Causeway serves it
        cases.append({"name": name, "file": os.path.basename(path), "format": "onnx",
                      "rows": rows_for_json(inputs.astype(np.float64)), "output": as_rows(result), "margin": None})

    no_zipmap = {"zipmap": False}
    gbc = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=SEED).fit(x, y)
    add("onnx_sklearn_gbc", to_onnx(gbc, x[:1], options=no_zipmap), test, "probabilities")
    forest = RandomForestClassifier(n_estimators=15, max_depth=5, random_state=SEED).fit(x, y)
    add("onnx_sklearn_forest", to_onnx(forest, x[:1], options=no_zipmap), test, "probabilities")
    regressor = GradientBoostingRegressor(n_estimators=25, max_depth=3, random_state=SEED).fit(x, x[:, 0] * 3 + 1)
    add("onnx_sklearn_regressor", to_onnx(regressor, x[:1]), test, "variable")
    classes = np.digitize(x[:, 0] + x[:, 1], [-0.7, 0.7])
    multi = GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=SEED).fit(x, classes)
    add("onnx_sklearn_multiclass", to_onnx(multi, x[:1], options=no_zipmap), test, "probabilities")
    x_missing = data(rng, 500, 6, missing=0.05).astype(np.float32)
    hist = HistGradientBoostingClassifier(max_iter=20, random_state=SEED).fit(x_missing, binary_label(x_missing, rng))
    add("onnx_sklearn_hist", to_onnx(hist, x_missing[:1], options=no_zipmap), test, "probabilities")
    booster = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=SEED, n_jobs=1).fit(x_missing, binary_label(x_missing, rng))
    add("onnx_xgboost", onnxmltools.convert_xgboost(booster, initial_types=[("input", ToolsFloat([None, 6]))]), test, "probabilities")
    light = lgb_sklearn.LGBMClassifier(n_estimators=20, num_leaves=8, random_state=SEED, verbose=-1, n_jobs=1).fit(x_missing, binary_label(x_missing, rng))
    add("onnx_lightgbm", onnxmltools.convert_lightgbm(light, initial_types=[("input", ToolsFloat([None, 6]))], zipmap=False), test, "probabilities")
    return cases


def graph_cases(out, rng):
    """General ONNX graphs (not tree ensembles), which Causeway scores through onnxruntime; the
    reference is onnxruntime in Python."""
    import glob

    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = data(rng, 400, 5, missing=0.0).astype(np.float32)
    y = binary_label(x, rng)
    test = data(rng, 100, 5, missing=0.0).astype(np.float32)
    cases = []

    def add(name, onnx_model, output_name, refused=None):
        path = os.path.join(out, f"{name}.onnx")
        with open(path, "wb") as handle:
            handle.write(onnx_model.SerializeToString())
        case = {"name": name, "file": os.path.basename(path), "rows": rows_for_json(test.astype(np.float64))}
        if refused:
            case["refused"] = refused
        else:
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            names = [output.name for output in session.get_outputs()]
            result = np.asarray(session.run(None, {session.get_inputs()[0].name: test})[names.index(output_name)],
                                dtype=np.float64)
            if result.ndim == 2 and result.shape[1] > 2:
                case["output"], case["classes"] = result.tolist(), int(result.shape[1])
            else:
                case["output"] = (result[:, 1] if result.ndim == 2 and result.shape[1] == 2 else result.reshape(-1)).tolist()
        cases.append(case)

    no_zipmap = {"zipmap": False}
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    add("graph_scaler_logistic", to_onnx(pipeline, x[:1], options={id(pipeline.steps[-1][1]): no_zipmap}), "probabilities")
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=SEED).fit(x, y)
    add("graph_mlp", to_onnx(mlp, x[:1], options=no_zipmap), "probabilities")
    linear = LinearRegression().fit(x, x[:, 0] * 2 - x[:, 1])
    add("graph_linear_regression", to_onnx(linear, x[:1]), "variable")
    classes = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])
    multinomial = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, classes)
    add("graph_multiclass", to_onnx(multinomial, x[:1], options={id(multinomial.steps[-1][1]): no_zipmap}),
        "probabilities")
    zipmapped = LogisticRegression().fit(x, y)
    add("graph_zipmap", to_onnx(zipmapped, x[:1]), None, refused="zipmap")
    library = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))
    return cases, library[0] if library else None


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    cases = xgboost_cases(out, rng) + lightgbm_cases(out, rng) + pandas_cases(out, rng) + onnx_cases(out, rng)
    graphs, library = graph_cases(out, rng)
    with open(os.path.join(out, "cases.json"), "w") as handle:
        json.dump({"versions": {"xgboost": xgboost.__version__, "lightgbm": lightgbm.__version__}, "cases": cases,
                   "graphs": graphs, "onnxruntime_library": library}, handle)
    print(f"{len(cases)} cases in {out}")


if __name__ == "__main__":
    main()
