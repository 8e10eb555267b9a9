"""The report stage: tables, figures and hyperparameter selection from run directories.

Reads what :mod:`fairbench.recorder` writes (never imports training code) and writes a
report folder; see :mod:`fairbench.report.build` for what is shown and
:mod:`fairbench.report.cli` for the command.

Modules: ``collect`` (find and read runs), ``grouping`` (experiments, methods, sweeps),
``tables`` (Table 4), ``selection`` (appendix B), ``trajectories`` / ``distributions`` /
``radar`` (Figures 1–4), ``style`` (colours, saving), ``document`` / ``html`` (rendering).
"""

from fairbench.report.build import Options, write_report

__all__ = ["Options", "write_report"]
