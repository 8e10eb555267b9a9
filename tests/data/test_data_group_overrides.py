"""Group sets on the command line replace the configured set; Hydra's silent merge is refused.

Hydra merges a mapping given on the command line into the configured one, so a partial set
or an added group would silently sit beside the preset's groups. Each is refused with one
line naming the key, the value and what is accepted; exit 2, nothing written.
"""

from __future__ import annotations

import pytest

from fairbench import cli
from fairbench.errors import ConfigError

PRESET = "dataset=oklahoma_race"  # groups: {RAC1P: {white: [1], non-white: rest}}
HOW = "~dataset.groups.RAC1P '+dataset.groups.RAC1P={label: [codes], ..., other: rest}'"


def groups(*overrides: str) -> dict:
    cfg = cli.compose_job([PRESET, *overrides])
    return {a: dict(spec) for a, spec in cfg.dataset.groups.items()}


REFUSED = [
    # a group added beside the preset's
    ("+dataset.groups.RAC1P.asian=[6]", "dataset.groups.RAC1P.asian=[6]: ", "white, non-white would stay beside asian"),
    # a partial set, merged into the preset's
    ("+dataset.groups.RAC1P={white:[1],asian:[6]}", "dataset.groups.RAC1P={'white': [1], 'asian': [6]}: ",
     "non-white would stay beside white, asian"),
    ("dataset.groups.RAC1P={white:[1,2]}", "dataset.groups.RAC1P={'white': [1, 2]}: ", "non-white would stay beside white"),
    ("+dataset.groups={RAC1P:{a:[1],b:rest}}", "dataset.groups.RAC1P={'a': [1], 'b': 'rest'}: ",
     "white, non-white would stay beside a, b"),
    # a new label without + (Hydra refuses it; the message must not claim the key is unknown)
    ("dataset.groups.RAC1P={white:[1],asian:[6]}", "dataset.groups.RAC1P='{white:[1],asian:[6]}': ",
     "names a group or an attribute that the configured groups do not have"),
    ("dataset.groups.RAC1P.asian=[6]", "dataset.groups.RAC1P.asian='[6]': ", "names a group or an attribute"),
]


@pytest.mark.parametrize("override,starts,says", REFUSED, ids=[r[0] for r in REFUSED])
def test_merged_or_new_groups_are_refused(override, starts, says):
    with pytest.raises(ConfigError) as info:
        groups(override)
    message = str(info.value)
    assert message.startswith(starts) and says in message and "\n" not in message
    assert "+dataset.groups.RAC1P={label: [codes], ..., other: rest}" in message
    assert "no such key" not in message


def test_accepted_ways_to_redefine_groups():
    assert groups("~dataset.groups.RAC1P", "+dataset.groups.RAC1P={white:[1],asian:[6],other:rest}") == {
        "RAC1P": {"white": [1], "asian": [6], "other": "rest"}}
    assert groups("~dataset.groups.RAC1P", "+dataset.groups.RAC1P.a=[1]", "+dataset.groups.RAC1P.b=rest") == {
        "RAC1P": {"a": [1], "b": "rest"}}
    assert groups("dataset.groups.RAC1P.white=[1,2]") == {"RAC1P": {"white": [1, 2], "non-white": "rest"}}
    assert groups("dataset.protected=[RAC1P,SEX]", "+dataset.groups.SEX={men:[1],women:[2]}") == {
        "RAC1P": {"white": [1], "non-white": "rest"}, "SEX": {"men": [1], "women": [2]}}


def test_the_cli_prints_one_line_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setattr("sys.argv", ["fairbench", PRESET, "+dataset.groups.RAC1P.asian=[6]",
                                     f"hydra.run.dir={out}", f"hydra.sweep.dir={out}"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and not out.exists()
    assert len(err) == 1 and err[0].startswith("fairbench: error: dataset.groups.RAC1P.asian=[6]: Hydra merges")
