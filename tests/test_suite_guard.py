"""Suite documents that would cost unbounded work or hold non-finite numbers are refused (issue 15)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asyrp_bench.errors import ConfigError
from asyrp_bench.suite import load_suite, suite_from_dict
from asyrp_bench.suite_guard import MAX_EXPANDED_NODES, MAX_SUITE_BYTES
from tests.test_suite import write

BASE = """
schema_version: 1
name: guard
seed: 1
backend: {name: tiny}
data: {folder: imgs}
sampler: {n_inv_step: 10, n_test_step: 10}
editors: [{variant: additive}]
train: {recipe: asyrp_paper}
edits:
  - {name: smiling, source: face, target: smiling face, t_edit: 500, t_boost: 200}
metrics: [fid]
"""


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    (tmp_path / "imgs").mkdir()
    return write(tmp_path / "s.yaml", BASE)


def bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(9))  # 9**9 ≈ 387 M leaves
    start = time.monotonic()
    with pytest.raises(ConfigError, match="alias bomb"):
        load_suite(path, check=False)
    assert time.monotonic() - start < 5.0


def test_a_small_alias_document_is_still_read(suite_file: Path) -> None:
    text = suite_file.read_text().replace("sampler: {n_inv_step: 10, n_test_step: 10}",
                                          "sampler: &s {n_inv_step: 10, n_test_step: 10}")
    suite_file.write_text(text)
    assert load_suite(suite_file, check=False).sampler.n_test_step == 10
    assert MAX_EXPANDED_NODES >= 10_000


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "#" * (MAX_SUITE_BYTES + 10) + "\n")
    with pytest.raises(ConfigError, match="the limit is"):
        load_suite(path, check=False)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400"])
def test_non_finite_numbers_in_the_file_name_key_and_line(suite_file: Path, value: str) -> None:
    suite_file.write_text(suite_file.read_text().replace("t_edit: 500", f"t_edit: {value}"))
    with pytest.raises(ConfigError) as info:
        load_suite(suite_file, check=False)
    message = str(info.value)
    assert "edits[0].t_edit" in message and "s.yaml:10" in message and "finite" in message


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_from_set_are_refused(suite_file: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"--set edits\.0\.strength.*not a finite number"):
        load_suite(suite_file, [f"edits.0.strength={value}"], check=False)


@pytest.mark.parametrize("value", ["nan", "1e400", "-inf"])
def test_words_that_parse_as_non_finite_floats_are_refused(suite_file: Path, value: str) -> None:
    # YAML 1.1 reads these as strings and pydantic's lax float parsing would turn them into NaN / inf.
    with pytest.raises(ConfigError, match=r"edits\[0\]\.strength: not a finite number"):
        load_suite(suite_file, [f"edits.0.strength={value}"], check=False)


def test_non_finite_in_dict_suite(suite_file: Path) -> None:
    import yaml

    data = yaml.safe_load(suite_file.read_text())
    data["seed"] = float("nan")
    with pytest.raises(ConfigError, match="seed: not a finite number"):
        suite_from_dict(data, check=False)


def test_validate_reports_every_file_of_a_folder(tmp_path: Path) -> None:
    from asyrp_bench.cli import app

    (tmp_path / "imgs").mkdir()
    write(tmp_path / "a_good.yaml", BASE)
    write(tmp_path / "b_nan.yaml", BASE.replace("t_edit: 500", "t_edit: .nan"))
    (tmp_path / "c_bomb.yaml").write_text(bomb(9))
    write(tmp_path / "d_good.yaml", BASE)
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    out = result.output
    assert "b_nan.yaml" in out and "c_bomb.yaml" in out and "Traceback" not in out
    assert out.count("ok") >= 2 and "d_good.yaml" in out
