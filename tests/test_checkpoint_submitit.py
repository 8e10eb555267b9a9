"""SLURM pre-emption through submitit, run with submitit's local executor: the job gets
submitit's pre-emption signal mid-seed, writes its checkpoint, is requeued by submitit and
the requeued job ends with the files of a job that was never pre-empted."""

import os
import signal
import sys
import threading
import time

import pytest

from fairbench import checkpoint, training
from fairbench.cli import compose_job
from fairbench.runner import run

submitit = pytest.importorskip("submitit")
cloudpickle = pytest.importorskip("cloudpickle")

from test_checkpoint_resume import files  # noqa: E402

ARGS = ["progress=false", "dataset.n_rows=2000", "budget.epochs=null", "budget.iterations=300", "log_every=20",
        "checkpoint_every=50", "algo=sgd", "problem.fast_path=numpy", "seeds=[0,1]"]
PREEMPTED_AT = 130


class Job(submitit.helpers.Checkpointable):
    """What the SLURM launcher submits, reduced to fairbench's run: ``checkpoint`` (inherited)
    resubmits the same call, as ``hydra_submitit_launcher``'s launcher does. On its first
    attempt (no checkpoint yet) it waits at step ``PREEMPTED_AT`` until the pre-emption signal
    has come (sent by the test, from outside)."""

    def __call__(self, out: str, marker: str) -> dict:
        from pathlib import Path

        import os  # noqa: F401 - (pickled by value: the job imports what it uses)
        attempts = Path(marker).parent / "attempts"
        attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
        saved = list(Path(out).glob("checkpoint_*"))
        if not saved:
            self.pause_at(PREEMPTED_AT, Path(marker))
        resumed_from = checkpoint.read(saved[0])["loop"]["iteration"] if saved else None
        summary = run(compose_job(ARGS), Path(out))
        return {"status": summary["status"], "attempts": len(attempts.read_text()), "resumed_from": resumed_from}

    @staticmethod
    def pause_at(at: int, marker) -> None:
        real_bind, calls, came = training.bind_variant, {"n": 0}, threading.Event()

        def bind(algo, oracle):
            name = real_bind(algo, oracle)
            step = algo.step.__func__

            def paused(self):
                info = step(self)
                if self is algo:
                    calls["n"] += 1
                    if calls["n"] == at:
                        usr = submitit.JobEnvironment._usr_sig()
                        handler = signal.getsignal(usr)  # the runner's, which chains submitit's
                        signal.signal(usr, lambda s, f: (handler(s, f), came.set()))
                        marker.write_text(str(os.getpid()))
                        came.wait(60)
                return info

            algo.step = type(algo.step)(paused, algo)
            return name

        training.bind_variant = bind


def test_preempted_job_is_requeued_and_continues(tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    reference = tmp_path / "reference"
    run(compose_job(ARGS), reference)
    out, marker = tmp_path / "out", tmp_path / "marker"
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=5)
    job = executor.submit(Job(), str(out), str(marker))
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline and not job.done():
        time.sleep(0.05)
    assert marker.exists(), job.stderr()
    # submitit's pre-emption signal (SIGUSR2) to the job's task, as SLURM sends it (and the
    # local executor's controller before its time-out; its LocalJob._interrupt signals the
    # controller itself, which does not forward it)
    os.kill(int(marker.read_text()), submitit.JobEnvironment._usr_sig())
    result = job.result()
    log = (job.stdout() or "") + (job.stderr() or "")
    # (a job this short counts as timed out rather than pre-empted: submitit requeues both)
    assert "Caught signal SIGUSR2" in log and "Requeued job" in log, log
    # the second attempt continued from the checkpoint written at the signal, not the one before
    assert result == {"status": "completed", "attempts": 2, "resumed_from": PREEMPTED_AT}
    assert files(out) == files(reference)
    assert not list(out.glob("checkpoint_*"))


def test_hydra_submitit_launcher_resubmits_itself():
    """The SLURM launcher's ``checkpoint`` (called by submitit on pre-emption) resubmits the
    same job, which reruns the same command: the mechanism the test above runs."""
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    launcher = SlurmLauncher(submitit_folder="x")
    delayed = launcher.checkpoint(["algo=sgd"], "hydra.sweep.dir", 0, "job", {})
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is launcher and delayed.args == (["algo=sgd"], "hydra.sweep.dir", 0, "job", {})


def test_slurm_launcher_requeues_on_time_out():
    """``conf/hydra/launcher/slurm.yaml`` lets submitit requeue a timed-out job (it resumes;
    the plugin's default, 0, would end it)."""
    from omegaconf import OmegaConf

    from fairbench import CONF_DIR

    assert OmegaConf.load(CONF_DIR / "hydra" / "launcher" / "slurm.yaml").max_num_timeout > 0
