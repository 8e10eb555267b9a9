"""The Dutch census: the ARFF reader (and its refusals, naming file and line), the configs
dutch and dutch_sex_age on a small file in a folder of sources, and the real file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fairbench.data import load_dataset
from fairbench.data.arff import read_arff
from fairbench.errors import DataError
import configs

COLUMNS = {
    "sex": ["2", "1"], "age": [str(a) for a in range(4, 16)], "household_position": ["1110", "1121"],
    "household_size": ["111", "112"], "prev_residence_place": ["1", "2"], "citizenship": ["1", "2"],
    "country_birth": ["1", "2"], "edu_level": ["1", "2", "3"], "economic_status": ["111", "120"],
    "cur_eco_activity": ["122", "135"], "Marital_status": ["1", "2"], "occupation": ["5_4_9", "2_1"],
}


def arff_text(n_rows: int = 2400, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    lines = ["% a small file shaped like the Dutch census", "@relation dutch_test", ""]
    lines += [f"@attribute {name} {{{','.join(levels)}}}" for name, levels in COLUMNS.items()]
    lines += ["", "@data"]
    for _ in range(n_rows):
        row = [levels[rng.integers(len(levels))] for levels in COLUMNS.values()]
        row[1] = str(rng.integers(4, 13)) if rng.random() < 0.97 else row[1]
        row[-1] = "2_1" if rng.random() < (0.6 if row[0] == "1" else 0.35) else "5_4_9"
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    (tmp_path / "dutch").mkdir()
    (tmp_path / "dutch" / "dutch_census_2001.arff").write_text(arff_text())
    return tmp_path


def test_reader_gives_level_indices(tmp_path: Path) -> None:
    path = tmp_path / "d.arff"
    path.write_text(arff_text(50))
    arff = read_arff(path)
    assert arff.names == list(COLUMNS) and arff.codes.shape == (50, 12)
    assert arff.column("occupation") == ["5_4_9", "2_1"]


@pytest.mark.parametrize(("edit", "line", "text"), [
    (lambda t: t[: t.index("@data")], None, "no @data section"),
    (lambda t: t.replace("@data\n", ""), 17, "expected @relation, @attribute or @data"),
    (lambda t: t.replace("@data\n", "@data\n1,2\n"), 18, "2 fields, the header declares 12"),
    (lambda t: t.replace("@data\n", "@data\n3" + "," * 11 + "\n"), 18, "sex='3' is not declared"),
    (lambda t: t.replace("@attribute age {", "@attribute age numeric {"), 5, "is not nominal"),
    (lambda t: t[: t.index("@data")] + "@data\n", 17, "holds no rows"),
])
def test_malformed_files_name_file_and_line(tmp_path: Path, edit, line, text) -> None:
    path = tmp_path / "bad.arff"
    path.write_text(edit(arff_text(5)))
    with pytest.raises(DataError, match=text) as info:
        read_arff(path)
    where = f"{path}:{line}:" if line else f"{path}:"
    assert str(info.value).startswith(where) and "\n" not in str(info.value)


def test_dutch_configs_on_a_folder_of_sources(sources: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAIRBENCH_DATA_DIR", str(sources))
    data = load_dataset(configs.dataset("dutch"))
    assert data.group_names == ["male", "female"] and "sex=1" not in data.feature_names
    assert "age=15" in data.feature_names and "Dutch Virtual Census 2001" in data.source
    both = load_dataset(configs.dataset("dutch_sex_age"))
    assert both.n_groups == 18 and both.group_names[0] == "male & age=4"
    assert "age=4" not in both.feature_names
    kept = sum(c["train"] + c["val"] + c["test"] for c in both.rows["per_group"].values())
    assert kept < 2400 and "rows outside the groups dropped" in both.source


def test_missing_dutch_file_names_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAIRBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="no Dutch census file at .*folder of sources holding dutch/"):
        load_dataset(configs.dataset("dutch"))


def test_real_dutch_census(dutch_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAIRBENCH_DATA_DIR", str(dutch_file.parents[1]))
    data = load_dataset(configs.dataset("dutch"))
    y = np.concatenate([s.y for s in data.splits().values()])
    assert (len(y), int(y.sum())) == (60420, 28763)
    groups = load_dataset(configs.dataset("dutch_sex_age"))
    assert groups.n_groups == 18
    assert sum(sum(c.values()) for c in groups.rows["per_group"].values()) == 60420 - 176 - 62 - 1022
