"""``fairbench --help``: what fairbench is, every config group with its options (the launchers
included), the top-level keys, and an example per common task."""

import os
import subprocess
import sys

from omegaconf import OmegaConf

from fairbench import CONF_DIR


def help_text() -> str:
    result = subprocess.run([sys.executable, "-m", "fairbench", "--help"], capture_output=True, text=True,
                            env=os.environ, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_help_lists_every_group_option_key_and_task():
    text = help_text()
    assert text.startswith("fairbench: a benchmark of stochastic constrained-optimisation methods")
    lines = text.splitlines()
    for group in ("algo", "dataset", "experiment", "model", "problem"):
        assert f"{group}: {', '.join(options(group))}" in lines, group
    launchers = text[text.index("hydra/launcher:"):text.index("== Top-level keys")]
    for launcher in ["basic", *options("hydra/launcher")]:
        assert f"{launcher} (" in launchers, launcher
    config = OmegaConf.load(CONF_DIR / "config.yaml")
    for key in (k for k in config if k not in ("defaults", "hydra")):
        if key == "budget":
            assert all(f"budget.{k}=" in text for k in config.budget), "budget"
        elif OmegaConf.is_dict(config[key]):
            assert all(f"\n{key}.{k}=" in text for k in config[key]), key
        else:
            assert f"\n{key}=" in text, key
    examples = text[text.index("== Examples =="):]
    for task in ("\nfairbench  ", "dataset=oklahoma_race", "fairbench -m algo=", "hydra/launcher=parallel",
                 "hydra/launcher=slurm", "+experiment=paper_oklahoma", "fairbench-report "):
        assert task in examples, task
