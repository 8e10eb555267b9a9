"""Fit the synthetic generator's parameters to the shared Oklahoma 2018 ACSIncome table.

Writes ``fairbench/data/synthetic_params.json``: summary statistics only (shares,
conditional frequency tables, logistic coefficients), never rows, so the file can be
committed while the census table stays outside the repository. Codes seen fewer than
``--min-count`` times are left out of the POBP and OCCP tables. Run it again only when the
generator's design changes; the output is deterministic.

    FAIRBENCH_DATA_DIR=/path/to/acs python scripts/fit_synthetic.py

The table uses FeDa4Fair's merged coding (see the data folder's PROVENANCE.md): its merged
non-white RAC1P classes are written back as one official code each (2 -> 2 Black,
3 -> 6 Asian, 4 -> 3 American Indian, 5 -> 9 two or more races), and MAR is only
married / not married.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from fairbench.data import data_root
from fairbench.data.coding import FEATURES, LABEL
from fairbench.data.sources import read_table
from fairbench.data.synthetic import MARRIED, PARAMS_FILE, bin_index, generate, label_features

TABLE = Path("preprocessed") / "feda4fair_acsincome_2018" / "OK_0.csv"
NONWHITE_OFFICIAL = {2: 2, 3: 6, 4: 3, 5: 9}  # FeDa4Fair merged RAC1P -> one official code
AGE_EDGES = [17, 25, 35, 45, 55, 65, 96]
HOURS_EDGES = [1, 20, 35, 40, 41, 50, 60, 100]
SCHL_BUCKET_EDGES = [1, 16, 18, 20, 21, 22, 25]  # <HS, HS/GED, some college, assoc., BA, grad
# Lower bounds of the 2018 SOC major occupation groups in OCCP codes (and an upper bound).
OCCP_BUCKET_EDGES = [0, 500, 1000, 1300, 1600, 2000, 2100, 2200, 2600, 3000, 3600, 3700, 4000,
                     4200, 4300, 4700, 5000, 6000, 6200, 7000, 7700, 9000, 9800, 10000]
DIGITS = 6


def shares(values: np.ndarray, codes: np.ndarray) -> list[float]:
    counts = np.array([(values == c).sum() for c in codes], dtype=np.float64)
    return [round(float(x), DIGITS) for x in counts / counts.sum()]


def conditional(values: np.ndarray, parent: np.ndarray, n_parents: int,
                codes: np.ndarray) -> dict[str, Any]:
    """``{"codes", "probs"}`` with one probability row per parent value."""
    return {"codes": codes.astype(int).tolist(),
            "probs": [shares(values[parent == k], codes) for k in range(n_parents)]}


def frequent(values: np.ndarray, min_count: int) -> np.ndarray:
    codes, counts = np.unique(values, return_counts=True)
    return codes[counts >= min_count]


def occupations(occp: np.ndarray, schl: np.ndarray, min_count: int) -> tuple[dict, dict]:
    """OCCP bucket given the schooling bucket, and the codes within each bucket."""
    bucket = bin_index(occp, OCCP_BUCKET_EDGES)
    n_buckets = len(OCCP_BUCKET_EDGES) - 1
    bucket_table = conditional(bucket, bin_index(schl, SCHL_BUCKET_EDGES),
                               len(SCHL_BUCKET_EDGES) - 1, np.arange(n_buckets))
    bucket_table = {"edges": OCCP_BUCKET_EDGES, "probs": bucket_table["probs"]}
    codes, probs = [], []
    for b in range(n_buckets):
        inside = occp[bucket == b]
        kept = frequent(inside, min_count)
        if kept.size == 0:  # keep every bucket drawable: its most common code
            kept = frequent(inside, 1)[:1] if inside.size else np.array([OCCP_BUCKET_EDGES[b]])
        codes.append(kept.astype(int).tolist())
        probs.append(shares(inside, kept) if inside.size else [1.0])
    return bucket_table, {"codes": codes, "probs": probs}


def label_model(columns: dict[str, np.ndarray], y: np.ndarray, params: dict) -> dict[str, Any]:
    """Logistic regression of the label on the one-hot binned features (no group term)."""
    index = label_features(columns, params)
    sizes = {"age_bin": len(AGE_EDGES) - 1, "schl_bucket": len(SCHL_BUCKET_EDGES) - 1,
             "occp_bucket": len(OCCP_BUCKET_EDGES) - 1, "sex": 2, "wkhp_bin": len(HOURS_EDGES) - 1,
             "married": 2, "cow": len(params["cow"]["codes"])}
    design = np.hstack([np.eye(sizes[b])[index[b]] for b in sizes])
    fit = LogisticRegression(C=1.0, max_iter=5000).fit(design, y)
    coef, start = {}, 0
    for block, size in sizes.items():
        coef[block] = [round(float(c), 4) for c in fit.coef_[0, start:start + size]]
        start += size
    return {"intercept": round(float(fit.intercept_[0]), 4), "coef": coef}


def fit(table: pd.DataFrame, min_count: int) -> dict[str, Any]:
    cols = {c: table[c].to_numpy() for c in FEATURES}
    y = table[LABEL].to_numpy()
    group = (cols["RAC1P"] != 1).astype(np.int64)
    married = (cols["MAR"] == MARRIED).astype(np.int64)
    age_bin = bin_index(cols["AGEP"], AGE_EDGES)
    nonwhite = cols["RAC1P"][group == 1]
    bucket_table, occp_table = occupations(cols["OCCP"], cols["SCHL"], min_count)
    params: dict[str, Any] = {
        "white_share": round(float((group == 0).mean()), DIGITS),
        "positive_rate": [round(float(y[group == g].mean()), DIGITS) for g in (0, 1)],
        "race": {"codes": list(NONWHITE_OFFICIAL.values()),
                 "probs": [shares(nonwhite, np.array(list(NONWHITE_OFFICIAL)))]},
        "sex": conditional(cols["SEX"], group, 2, np.array([1, 2])),
        "schl": conditional(cols["SCHL"], group, 2, np.arange(1, 25)),
        "cow": conditional(cols["COW"], group, 2, np.unique(cols["COW"])),
        "pobp": conditional(cols["POBP"], group, 2, frequent(cols["POBP"], min_count)),
        "age_bin": {"edges": AGE_EDGES,
                    "probs": conditional(age_bin, group, 2, np.arange(len(AGE_EDGES) - 1))["probs"]},
        "married": [round(float(married[age_bin == b].mean()), DIGITS)
                    for b in range(len(AGE_EDGES) - 1)],
        "relp": conditional(cols["RELP"], married, 2, np.unique(cols["RELP"])),
        "schl_bucket_edges": SCHL_BUCKET_EDGES,
        "occp_bucket": bucket_table,
        "occp": occp_table,
        "wkhp_bin": {"edges": HOURS_EDGES,
                     "probs": conditional(bin_index(cols["WKHP"], HOURS_EDGES),
                                          cols["SEX"].astype(np.int64) - 1, 2,
                                          np.arange(len(HOURS_EDGES) - 1))["probs"]},
    }
    params["label_model"] = label_model(cols, y, params)
    return params


def report(params: dict[str, Any]) -> str:
    """Rates and learnability of the default synthetic sample, for a quick sanity check."""
    frame = generate(18000, 0, params)
    white = frame["RAC1P"] == 1
    X = frame[[c for c in FEATURES if c != "RAC1P"]].to_numpy()
    X = (X - X.mean(0)) / X.std(0)
    y = frame[LABEL].to_numpy()
    model = LogisticRegression(max_iter=2000).fit(X[:14400], y[:14400])
    return (f"white share {white.mean():.4f}; positive rate white {y[white].mean():.4f} / "
            f"non-white {y[~white].mean():.4f}; logistic test accuracy "
            f"{model.score(X[14400:], y[14400:]):.4f} (majority {1 - y[14400:].mean():.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=data_root() / TABLE)
    parser.add_argument("--out", type=Path, default=PARAMS_FILE)
    parser.add_argument("--min-count", type=int, default=5)
    args = parser.parse_args()
    table = read_table(args.table)
    params = {
        "about": "Parameters of fairbench's synthetic ACSIncome generator: summary statistics "
                 "of the Oklahoma 2018 ACSIncome table, written by scripts/fit_synthetic.py. "
                 "Group index 0 = white, 1 = non-white; SEX rows 0 = male, 1 = female.",
        "fitted_on": {"table": str(TABLE), "rows": int(len(table)),
                      "sha256": hashlib.sha256(args.table.read_bytes()).hexdigest()},
        **fit(table, args.min_count),
    }
    lines = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in params.items()]
    args.out.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {args.out}: {report(params)}")


if __name__ == "__main__":
    main()
