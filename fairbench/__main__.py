"""``python -m fairbench`` is the ``fairbench`` command."""

from fairbench.cli import main

main()
