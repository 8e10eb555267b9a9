"""``python -m fairbench.report`` is the ``fairbench-report`` command."""

from fairbench.report.cli import main

raise SystemExit(main())
