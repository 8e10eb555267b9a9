"""The user-facing error type.

Every mistake a user can make (a bad config value, missing data, an unknown name) raises
:class:`FairbenchError`. The CLI prints its one-line message to stderr and exits with
:data:`EXIT_USAGE`; nothing else in fairbench prints tracebacks for user mistakes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EXIT_USAGE = 2


class FairbenchError(Exception):
    """A problem the user can fix. ``str(err)`` is the single line shown to them."""

    exit_code = EXIT_USAGE


class ConfigError(FairbenchError):
    """A config value outside its domain.

    The message always names the key, the value given and what is accepted, e.g.
    ``algo.lr=-0.1: must be a number > 0``.
    """

    def __init__(self, key: str, value: Any, accepted: str):
        self.key, self.value, self.accepted = key, value, accepted
        super().__init__(f"{key}={value!r}: {accepted}")


class DataError(FairbenchError):
    """Data that cannot be found, read or used (missing files, bad columns, empty groups)."""


def check(condition: bool, key: str, value: Any, accepted: str) -> None:
    """Raise :class:`ConfigError` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, value, accepted)


def check_positive(key: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Check that ``value`` is a (finite) positive number, optionally an integer."""
    kind = "an integer" if integer else "a number"
    bound = ">= 0" if allow_zero else "> 0"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = (value >= 0 if allow_zero else value > 0) and value == value and value != float("inf")
    check(ok, key, value, f"must be {kind} {bound}")


def check_in(key: str, value: Any, accepted: Iterable[Any]) -> None:
    """Check that ``value`` is one of ``accepted``."""
    accepted = list(accepted)
    check(value in accepted, key, value, "accepted: " + ", ".join(map(str, accepted)))
