"""An embedded, deterministic stand-in for ACSIncome: works with no file and no network.

Why: the benchmark must run (tests, demos, CI) where census data cannot be downloaded. The
generator reproduces what matters for fairness-constrained training on Oklahoma 2018:
the ACSIncome schema (ten feature columns in official 2018 ACS codes, plus a binary label),
a white share and per-group positive rates equal to Oklahoma's (30.8 % vs 20.7 %), group
differences in the features, and a label that depends on the features so that models can
learn it. It is not census data, and every dataset built from it is flagged ``synthetic``.

How: ancestral sampling from summary statistics of the shared Oklahoma table, committed in
``synthetic_params.json`` by ``scripts/fit_synthetic.py`` (marginals and conditional
frequency tables, never rows):

1. group (white / non-white) from the white share; non-white rows get an official RAC1P
   code from the non-white race mix;
2. SEX, age bin, SCHL, COW and POBP given the group; AGEP uniform within its bin;
3. married given the age bin (MAR 1, else 5: the source table merged MAR 2-5, so the
   generator cannot tell widowed, divorced or separated people apart); RELP given married;
4. occupation bucket given the schooling bucket, then an OCCP code within the bucket;
5. hours bin given SEX, WKHP uniform within it;
6. the label from a logistic model on those binned features: with logistic noise
   ``e``, the rows of each group with the largest ``z + e`` are positive, exactly as many as
   the group's target rate asks. This equals drawing ``Bernoulli(sigmoid(z - t_g))`` with a
   per-group threshold ``t_g`` calibrated on the sample, so the rates match exactly.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used: a cache hit never needs it
    import pandas as pd

from fairbench.data.coding import FEATURES, LABEL

PARAMS_FILE = Path(__file__).with_name("synthetic_params.json")
MARRIED, NOT_MARRIED = 1, 5  # official MAR codes used by the generator
WHITE = 1  # official RAC1P code


@lru_cache(maxsize=1)
def load_params() -> dict[str, Any]:
    """The committed generator parameters."""
    return json.loads(PARAMS_FILE.read_text())


def describe(n_rows: int, seed: int) -> str:
    """The ``PreparedData.source`` line of a synthetic dataset."""
    return (f"synthetic ACSIncome-like data ({n_rows} rows, generator seed {seed}; parameters "
            f"fitted to the OK 2018 table, fairbench/data/{PARAMS_FILE.name}); not census data")


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin of each value; ``edges`` are the bins' lower bounds followed by an upper bound."""
    index = np.searchsorted(np.asarray(edges), values, side="right") - 1
    return np.clip(index, 0, len(edges) - 2).astype(np.int64)


def draw(rng: np.random.Generator, probs: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """One category index per row, from row ``parent[i]`` of the table ``probs`` (k, m)."""
    k, m = probs.shape
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    flat = (cdf + np.arange(k)[:, None]).ravel()
    position = np.searchsorted(flat, rng.random(parent.shape[0]) + parent, side="right")
    return np.minimum(position - parent * m, m - 1)


def _table(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(spec["codes"]), np.asarray(spec["probs"], dtype=np.float64)


def _uniform_in_bins(rng: np.random.Generator, bins: np.ndarray, edges: list[int]) -> np.ndarray:
    low = np.asarray(edges)[bins]
    high = np.asarray(edges)[bins + 1]
    return rng.integers(low, high)


def _occupations(rng: np.random.Generator, p: dict[str, Any], schl: np.ndarray) -> np.ndarray:
    """OCCP bucket given the schooling bucket, then a code within the bucket."""
    schl_bucket = bin_index(schl, p["schl_bucket_edges"])
    bucket = draw(rng, np.asarray(p["occp_bucket"]["probs"]), schl_bucket)
    codes = p["occp"]["codes"]
    width = max(len(c) for c in codes)
    padded_codes = np.array([c + [c[-1]] * (width - len(c)) for c in codes])
    padded_probs = np.array([q + [0.0] * (width - len(q)) for q in p["occp"]["probs"]])
    return padded_codes[bucket, draw(rng, padded_probs, bucket)]


def label_features(columns: dict[str, np.ndarray], p: dict[str, Any]) -> dict[str, np.ndarray]:
    """The binned features of the label model: one level index per row and block."""
    return {
        "age_bin": bin_index(columns["AGEP"], p["age_bin"]["edges"]),
        "schl_bucket": bin_index(columns["SCHL"], p["schl_bucket_edges"]),
        "occp_bucket": bin_index(columns["OCCP"], p["occp_bucket"]["edges"]),
        "sex": np.asarray(columns["SEX"]).astype(np.int64) - 1,
        "wkhp_bin": bin_index(columns["WKHP"], p["wkhp_bin"]["edges"]),
        "married": (np.asarray(columns["MAR"]) == MARRIED).astype(np.int64),
        "cow": np.searchsorted(np.asarray(p["cow"]["codes"]), columns["COW"]),
    }


def label_scores(columns: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """The logistic model's linear score ``z`` (without any group offset)."""
    model = p["label_model"]
    index = label_features(columns, p)
    z = np.full(index["sex"].shape[0], float(model["intercept"]))
    for block, coef in model["coef"].items():
        z += np.asarray(coef)[index[block]]
    return z


def _labels(rng: np.random.Generator, z: np.ndarray, group: np.ndarray,
            rates: list[float]) -> np.ndarray:
    """Per group, the ``round(rate * n_g)`` rows with the largest ``z + logistic noise``."""
    noisy = z + rng.logistic(size=z.shape[0])
    label = np.zeros(z.shape[0], dtype=np.int8)
    for g, rate in enumerate(rates):
        rows = np.flatnonzero(group == g)
        top = rows[np.argsort(-noisy[rows], kind="stable")[: int(round(rate * rows.size))]]
        label[top] = 1
    return label


def generate(n_rows: int, seed: int, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """``n_rows`` rows with FEATURES (float64, official codes) and a 0/1 ``label`` column."""
    import pandas as pd
    p = params if params is not None else load_params()
    rng = np.random.default_rng(seed)
    group = (rng.random(n_rows) >= p["white_share"]).astype(np.int64)  # 0 white, 1 non-white
    race_codes, race_probs = _table(p["race"])
    race = np.where(group == 0, WHITE, race_codes[draw(rng, race_probs, np.zeros_like(group))])
    cols: dict[str, np.ndarray] = {"RAC1P": race}
    for column, key in (("SEX", "sex"), ("SCHL", "schl"), ("COW", "cow"), ("POBP", "pobp")):
        codes, probs = _table(p[key])
        cols[column] = codes[draw(rng, probs, group)]
    age_bin = draw(rng, np.asarray(p["age_bin"]["probs"]), group)
    cols["AGEP"] = _uniform_in_bins(rng, age_bin, p["age_bin"]["edges"])
    married = rng.random(n_rows) < np.asarray(p["married"])[age_bin]
    cols["MAR"] = np.where(married, MARRIED, NOT_MARRIED)
    relp_codes, relp_probs = _table(p["relp"])
    cols["RELP"] = relp_codes[draw(rng, relp_probs, married.astype(np.int64))]
    cols["OCCP"] = _occupations(rng, p, cols["SCHL"])
    hours_bin = draw(rng, np.asarray(p["wkhp_bin"]["probs"]), cols["SEX"].astype(np.int64) - 1)
    cols["WKHP"] = _uniform_in_bins(rng, hours_bin, p["wkhp_bin"]["edges"])
    frame = pd.DataFrame({c: cols[c].astype(np.float64) for c in FEATURES})
    frame[LABEL] = _labels(rng, label_scores(cols, p), group, p["positive_rate"])
    return frame
