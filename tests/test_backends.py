"""The backend layer (:mod:`fairbench.backends`): a method file holds only its numpy rule on
the small oracle interface; the chooser (:mod:`fairbench.backends.variants`) picks the
registered fast variants, and any other method runs on every oracle on the reference path."""

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fairbench.algorithms.alm import ALM
from fairbench.algorithms.base import Algorithm
from fairbench.algorithms.ghost import StochasticGhost
from fairbench.algorithms.sgd import SGD
from fairbench.algorithms.sgd_fairret import SGDFairret
from fairbench.algorithms.sgd_penalized import SGDPenalized
from fairbench.algorithms.ssl_alm import SSLALM
from fairbench.algorithms.ssw import SwitchingSubgradient
from fairbench.backends.oracles import compiled_available
from fairbench.backends.variants import REFERENCE, VARIANTS, can_stack_method, choose, load
from fairbench.cli import compose_job
from fairbench.runner import run

ROOT = Path(__file__).resolve().parent.parent
ORACLE_PATHS = ("autograd", "numpy", "compiled", "numpy-stacked", "compiled-stacked")


class PenaltySubgradient(Algorithm):
    """A contributor's method, written only against the small oracle interface: a step on
    ``f + weight * sum_j max(c_j, 0)``,
    ``x <- x - lr (grad f(x; zeta) + weight * sum_{j: c_j > 0} grad c_j(x; xi))``."""

    needs_constraints = True

    def __init__(self, lr: float, weight: float, batch_size: int, per_group: int):
        self.lr, self.weight, self.batch_size, self.per_group = lr, weight, batch_size, per_group

    def setup(self, oracle, rng):
        super().setup(oracle, rng)
        self.steps_on_constraints = 0

    def step(self):
        oracle = self.oracle
        _, g = oracle.objective(oracle.sample_objective(self.batch_size), grad=True)
        c, J = oracle.constraints(oracle.sample_constraints(self.per_group), jac=True)
        active = c > 0
        self.steps_on_constraints += int(active.any())
        oracle.x -= self.lr * (g + self.weight * active.astype(g.dtype) @ J)
        return {"active_steps": int(active.any())}

    def state(self):
        return {"steps_on_constraints": float(self.steps_on_constraints)}


def contributor_run(tmp_path, fast_path):
    cfg = compose_job(["progress=false", "algo=sgd", "seeds=[0,1]", "budget.epochs=null",
                       "budget.iterations=40", "log_every=20", f"problem.fast_path={fast_path}"])
    cfg.algo = OmegaConf.create({"_target_": f"{__name__}.PenaltySubgradient", "name": "penalty_subgradient",
                                 "lr": 0.05, "weight": 0.5, "batch_size": 8, "per_group": 4})
    out = tmp_path / fast_path
    summary = run(cfg, out)
    assert summary["status"] == "completed"
    return [json.loads((out / f"seed_{s}" / "metrics.json").read_text()) for s in (0, 1)]


@pytest.mark.parametrize("fast_path,oracle", [
    ("off", "autograd"), ("numpy", "numpy"),
    pytest.param("compiled", "compiled", marks=pytest.mark.skipif(not compiled_available(), reason="no numba")),
])
def test_a_contributed_method_runs_on_every_oracle_on_the_reference_path(tmp_path, fast_path, oracle):
    metrics = contributor_run(tmp_path, fast_path)
    for m in metrics:
        assert m["oracle_path"] == oracle and m["algorithm_path"] == REFERENCE
        assert m["iterations"] == 40 and "stack_size" not in m  # not declared seed-axis safe: not stacked
        assert m["events"]["active_steps"] >= 0
    assert not can_stack_method(PenaltySubgradient)
    assert all(choose(PenaltySubgradient, path) is None for path in ORACLE_PATHS)


def test_the_chooser_picks_the_registered_variants_of_the_shipped_methods():
    expected = {
        (SSLALM, "compiled"): "compiled", (SSLALM, "compiled-stacked"): "compiled",
        (SSLALM, "numpy-stacked"): "stacked", (SSLALM, "numpy"): None, (SSLALM, "autograd"): None,
        (ALM, "compiled"): "compiled", (ALM, "numpy-stacked"): "stacked",
        (SwitchingSubgradient, "numpy-stacked"): "stacked", (SwitchingSubgradient, "compiled-stacked"): "stacked",
        (SwitchingSubgradient, "compiled"): None,
        (SGDPenalized, "numpy-stacked"): "stacked", (SGDPenalized, "compiled"): None,
        (SGDFairret, "compiled"): "compiled", (SGDFairret, "numpy"): None,
        (StochasticGhost, "compiled"): "compiled", (StochasticGhost, "numpy"): "fused",
        (StochasticGhost, "autograd"): None,
        (SGD, "compiled"): None, (SGD, "numpy-stacked"): None,
    }
    for (cls, path), name in expected.items():
        variant = choose(cls, path)
        assert (variant and variant.name) == name, (cls.__name__, path)
    stackable = {cls.__name__ for cls in (SGD, SGDPenalized, SSLALM, ALM, SwitchingSubgradient, SGDFairret,
                                          StochasticGhost) if can_stack_method(cls)}
    assert stackable == {"SGD", "SGDPenalized", "SSLALM", "ALM", "SwitchingSubgradient"}


def test_a_subclass_with_its_own_step_gets_no_variant_that_replaces_the_step():
    class MySSW(SwitchingSubgradient):
        def step(self):
            return super().step()

    class MySSLALM(SSLALM):
        def step(self):
            return super().step()

    assert choose(MySSW, "numpy-stacked") is None and not can_stack_method(MySSW)
    assert choose(MySSLALM, "compiled") is None and choose(MySSLALM, "numpy-stacked") is None
    assert not can_stack_method(MySSLALM)


def test_every_registered_variant_resolves():
    for key, variants in VARIANTS.items():
        module, _, name = key.rpartition(".")
        assert hasattr(__import__(module, fromlist=[name]), name), key
        for variant in variants:
            assert set(variant.oracle_paths) <= set(ORACLE_PATHS), variant
            if "compiled" in variant.bind and not compiled_available():
                continue
            assert callable(load(variant)), variant


def shipped_method_files() -> list[Path]:
    """The files of the methods shipped in conf/algo (their ``_target_`` modules)."""
    files = []
    for yaml in sorted((ROOT / "conf" / "algo").glob("*.yaml")):
        target = re.search(r"^_target_:\s*(\S+)", yaml.read_text(), re.M).group(1)
        files.append(ROOT / (target.rpartition(".")[0].replace(".", "/") + ".py"))
    return files


FORBIDDEN = ("numba", "stacked", "stacking", "kernel", "compiled")


def test_the_method_files_hold_no_fast_path():
    files = shipped_method_files()
    assert sorted(f.stem for f in files) == ["alm", "extragradient", "gda", "ghost", "ialm", "nupi", "pbm", "sgd", "sgd_fairret",
                                            "sgd_penalized", "ssl_alm", "ssw"]
    for path in files:
        text = path.read_text()
        found = [w for w in FORBIDDEN if w in text.lower()]
        assert not found, f"{path.name} mentions {found}"
        imported = {n.module for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m.startswith("fairbench.backends") for m in imported), path.name
        assert len(text.splitlines()) <= 300, path.name
    # the check sees what it is looking for: the compiled SSL-ALM variant would fail it
    assert any(w in (ROOT / "fairbench/backends/compiled/ssl_alm.py").read_text().lower() for w in FORBIDDEN)


def test_a_stacked_oracle_is_refused_for_a_method_that_cannot_stack():
    from fairbench.backends.variants import bind_variant
    from fairbench.errors import FairbenchError

    class Fake:
        fast_path_name = "numpy-stacked"
        x = np.zeros((2, 3))

    with pytest.raises(FairbenchError, match="cannot train stacked seeds"):
        bind_variant(PenaltySubgradient(lr=0.1, weight=1.0, batch_size=2, per_group=2), Fake())
