"""Run the ``fairbench`` command in process, as a test sees it."""

from __future__ import annotations

from fairbench import cli


def main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``fairbench args`` in process: (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.argv", ["fairbench", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err
