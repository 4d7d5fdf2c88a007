"""Suite schema, includes, --set overrides, error locations, expansion and config hashes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asyrp_bench.errors import ConfigError
from asyrp_bench.suite import (
    SCHEMA_VERSION,
    expand,
    find_suite_files,
    load_suite,
    parse_set,
    suite_from_dict,
    suite_hash,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = find_suite_files(REPO / "suites")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


BASE = """
schema_version: 1
backend: {name: tiny}
data: {folder: imgs}
sampler: {n_inv_step: 10, n_test_step: 10}
"""

SUITE = """
include: [_base/base.yaml]
name: demo
seed: 7
editors:
  - {variant: additive}
  - variant: additive
    label: additive_b
    params: {}
train: {recipe: asyrp_paper}
edits:
  - {name: smiling, source: face, target: smiling face, t_edit: 513, t_boost: 167}
  - {name: sad, source: face, target: sad face, t_edit: 500}
metrics: [fid, {name: clip_directional, params: {model: m}}]
"""


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    root = tmp_path / "suites"
    (root / "_base" / "imgs").mkdir(parents=True)
    write(root / "_base" / "base.yaml", BASE)
    write(root / "demo.yaml", SUITE)
    return root


def load(root: Path, *sets: str, name: str = "demo.yaml"):
    return load_suite(root / name, sets, check=False)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_suite_validates(path: Path) -> None:
    suite = load_suite(path)
    cells = expand(suite)
    assert cells and len({c.id for c in cells}) == len(cells)
    assert suite.schema_version == SCHEMA_VERSION


def test_shipped_suites_exist() -> None:
    names = {p.name for p in SHIPPED}
    assert {"paper_table1.yaml", "paper_released.yaml", "ablation_ft.yaml", "quickstart.yaml", "ci_tiny.yaml"} <= names


def test_paper_suites_carry_the_published_sdir_row_with_its_caveat() -> None:
    for name in ("paper_table1.yaml", "paper_released.yaml"):
        suite = load_suite(REPO / "suites" / name)
        (ref,) = suite.reference
        assert ref.values["clip_directional"] == {
            "smiling": 0.921, "sad": 0.964, "tanned": 0.991, "pixar": 0.956, "neanderthal": 0.805}
        assert "units unverified" in ref.note
        assert [e.name for e in suite.edits] == ["smiling", "sad", "tanned", "pixar", "neanderthal"]
        assert suite.data.split == "celebahq_test100"


def test_released_suite_loads_the_five_checkpoints() -> None:
    cells = expand(load_suite(REPO / "suites" / "paper_released.yaml"))
    assert {c.edit.name: c.checkpoint for c in cells} == {
        e: f"asyrp_{e}" for e in ("smiling", "sad", "tanned", "pixar", "neanderthal")}
    assert all(c.train is None for c in cells)


def test_include_merges_and_expands(suite_dir: Path) -> None:
    suite = load(suite_dir)
    assert suite.backend[0].name == "tiny" and suite.sampler.n_test_step == 10
    assert suite.data.folder == str((suite_dir / "_base" / "imgs").resolve())  # relative to the defining file
    cells = expand(suite)
    assert [c.id for c in cells] == ["additive__smiling__s7", "additive__sad__s7",
                                     "additive_b__smiling__s7", "additive_b__sad__s7"]
    assert cells[1].edit.t_boost == 167  # default
    assert [m.name for m in suite.metrics] == ["fid", "clip_directional"]


def test_later_include_wins_and_lists_are_replaced(suite_dir: Path) -> None:
    write(suite_dir / "_base" / "more.yaml", """
    sampler: {n_test_step: 20}
    edits: [{name: old, source: a, target: b, t_edit: 400}]
    """)
    text = (suite_dir / "demo.yaml").read_text().replace("[_base/base.yaml]", "[_base/base.yaml, _base/more.yaml]")
    (suite_dir / "demo.yaml").write_text(text)
    suite = load(suite_dir)
    assert suite.sampler.n_test_step == 20 and suite.sampler.n_inv_step == 10  # deep merge of mappings
    assert [e.name for e in suite.edits] == ["smiling", "sad"]  # the including file's list replaces


def test_set_overrides_are_yaml_typed_and_win(suite_dir: Path) -> None:
    suite = load(suite_dir, "sampler.n_test_step=5", "edits.1.strength=0.5", "seed=[1, 2]",
                 "output.save_images=false")
    assert suite.sampler.n_test_step == 5 and suite.edits[1].strength == 0.5
    assert suite.seeds == [1, 2] and suite.output.save_images is False
    assert len(expand(suite)) == 8
    assert parse_set("a.b.0=x y") == (("a", "b", 0), "x y")


def test_misspelled_key_names_file_line_and_suggestion(suite_dir: Path) -> None:
    text = (suite_dir / "demo.yaml").read_text().replace("label: additive_b", "lable: additive_b")
    (suite_dir / "demo.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load(suite_dir)
    message = str(info.value)
    assert "demo.yaml:7:" in message and "editors[1].lable" in message and "Did you mean 'label'?" in message


def test_misspelled_key_in_an_included_file_points_at_that_file(suite_dir: Path) -> None:
    write(suite_dir / "_base" / "base.yaml", BASE.replace("n_test_step", "n_tset_step"))
    with pytest.raises(ConfigError) as info:
        load(suite_dir)
    assert "base.yaml:4: sampler.n_tset_step: unknown key. Did you mean 'n_test_step'?" in str(info.value)


def test_misspelled_top_level_key(suite_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"--set metircs=\[\]: metircs: unknown key. Did you mean 'metrics'"):
        load(suite_dir, "metircs=[]")


def test_wrong_type_names_the_location(suite_dir: Path) -> None:
    text = (suite_dir / "demo.yaml").read_text().replace("t_edit: 500", "t_edit: late")
    (suite_dir / "demo.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load(suite_dir)
    assert "demo.yaml:12: edits[1].t_edit: Input should be a valid integer" in str(info.value)


def test_semantic_errors(suite_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"t_boost \(600\) must not exceed t_edit \(513\)"):
        load(suite_dir, "edits.0.t_boost=600")
    with pytest.raises(ConfigError, match="duplicate edit names"):
        load(suite_dir, "edits.1.name=smiling")
    with pytest.raises(ConfigError, match="duplicate editor labels"):
        load(suite_dir, "editors.1.label=additive")
    with pytest.raises(ConfigError, match="neither 'checkpoint' nor a 'train'"):
        load(suite_dir, "train=null")
    with pytest.raises(ConfigError, match="newer than this asyrp-bench reads"):
        load(suite_dir, f"schema_version={SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match="exactly one of 'split'"):
        load(suite_dir, "data.split=world")
    with pytest.raises(ConfigError, match=r"edits\[5\] does not exist"):
        load(suite_dir, "edits.5.t_edit=1")


def test_missing_required_key(suite_dir: Path) -> None:
    text = (suite_dir / "demo.yaml").read_text().replace("name: demo\n", "")
    (suite_dir / "demo.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"demo.yaml:1: name: required key is missing"):
        load(suite_dir)


def test_duplicate_yaml_key(suite_dir: Path) -> None:
    text = (suite_dir / "demo.yaml").read_text()
    (suite_dir / "demo.yaml").write_text(text + "seed: 8\n")
    line = text.count("\n") + 1
    with pytest.raises(ConfigError, match=rf"demo.yaml:{line}: duplicate key 'seed' \(first given on line 3\)"):
        load(suite_dir)


def test_missing_include_and_escape_and_cycle(suite_dir: Path, tmp_path: Path) -> None:
    demo = suite_dir / "demo.yaml"
    demo.write_text(demo.read_text().replace("_base/base.yaml", "_base/nope.yaml"))
    with pytest.raises(ConfigError, match=r"demo.yaml:1: included file not found: .*nope.yaml"):
        load(suite_dir)
    write(tmp_path / "outside.yaml", BASE)
    demo.write_text(demo.read_text().replace("_base/nope.yaml", "../outside.yaml"))
    with pytest.raises(ConfigError, match="outside the including file's folder and the suites tree"):
        load(suite_dir)
    write(suite_dir / "_base" / "a.yaml", "include: [b.yaml]\n")
    write(suite_dir / "_base" / "b.yaml", "include: [a.yaml]\n")
    demo.write_text(demo.read_text().replace("../outside.yaml", "_base/a.yaml"))
    with pytest.raises(ConfigError, match="include cycle"):
        load(suite_dir)


def test_nested_suite_may_include_from_the_suites_tree(suite_dir: Path) -> None:
    write(suite_dir / "sub" / "x.yaml", SUITE.replace("_base/base.yaml", "../_base/base.yaml"))
    assert load(suite_dir, name="sub/x.yaml").name == "demo"


def test_missing_paths_and_unknown_names_are_errors_with_locations(suite_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_suite(suite_dir / "demo.yaml", ["backend.name=tinyy", "editors.0.variant=additve",
                                             "data.folder=missing_dir"])
    message = str(info.value)
    assert "backend.name: unknown backend 'tinyy'. Did you mean 'tiny'?" in message
    assert "editors[0].variant: unknown editor 'additve'. Did you mean 'additive'?" in message
    assert "--set data.folder=missing_dir: data.folder: folder not found" in message


def test_checkpoint_forms(suite_dir: Path) -> None:
    suite = load(suite_dir, "editors.0={variant: additive, checkpoint: {smiling: a.pth, sad: b.pth}}",
                 "editors.1={variant: additive, label: one, checkpoint: c.pth, n_train_step: 40}")
    cells = {c.id: c for c in expand(suite)}
    assert Path(cells["additive__sad__s7"].checkpoint).name == "b.pth"
    assert Path(cells["one__smiling__s7"].checkpoint).name == "c.pth"
    assert cells["one__smiling__s7"].train is None
    with pytest.raises(ConfigError, match=r"no checkpoint for edit\(s\) \['sad'\]"):
        load(suite_dir, "editors.0={variant: additive, checkpoint: {smiling: a.pth}}")
    with pytest.raises(ConfigError, match="describes a loaded checkpoint"):
        load(suite_dir, "editors.0.n_train_step=40")


def test_config_hash_covers_semantics_only(suite_dir: Path, tmp_path: Path) -> None:
    base = {c.id: c.config_hash for c in expand(load(suite_dir))}
    same = {c.id: c.config_hash for c in expand(load(suite_dir, "output.batch_size=1", "output.save_images=false"))}
    assert base == same
    moved = tmp_path / "elsewhere" / "imgs"
    moved.mkdir(parents=True)
    assert {c.id: c.config_hash for c in expand(load(suite_dir, f"data.folder={moved}"))} == base
    changed = {c.id: c.config_hash for c in expand(load(suite_dir, "edits.0.strength=0.5"))}
    assert changed["additive__smiling__s7"] != base["additive__smiling__s7"]
    assert changed["additive__sad__s7"] == base["additive__sad__s7"]
    # Labels only name cells: two editors with the same variant and params are the same computation.
    assert base["additive__sad__s7"] == base["additive_b__sad__s7"]
    assert base["additive__sad__s7"] != base["additive__smiling__s7"]
    assert suite_hash(load(suite_dir)) == suite_hash(load(suite_dir, "output.batch_size=3"))


def test_suite_from_dict_and_resolved_yaml_round_trip(suite_dir: Path) -> None:
    suite = load(suite_dir)
    again = suite_from_dict(suite.resolved_dict(), check=False)
    assert again.model_dump() == suite.model_dump()
    assert "checkpoint" in suite.to_yaml()


def test_validate_cli(suite_dir: Path) -> None:
    from asyrp_bench.cli import app

    runner = CliRunner()
    (suite_dir / "_base" / "imgs").mkdir(exist_ok=True)
    good = runner.invoke(app, ["validate", str(suite_dir / "demo.yaml")])
    assert good.exit_code == 0, good.output
    assert "4 cells" in good.output
    bad = runner.invoke(app, ["validate", str(suite_dir / "demo.yaml"), "--set", "edits.0.t_edti=3"])
    assert bad.exit_code == 1
    assert "Did you mean 't_edit'" in bad.output


def test_per_edit_train_overrides_merge_into_that_edit_only(suite_dir: Path) -> None:
    plain = {c.id: c for c in expand(load(suite_dir, "train.overrides={lr: 0.3, lambda_l1: 3.0}"))}
    tuned = {c.id: c for c in expand(load(suite_dir, "train.overrides={lr: 0.3, lambda_l1: 3.0}",
                                          "edits.1.train_overrides={lambda_l1: 0.5}"))}
    assert tuned["additive__sad__s7"].train.overrides == {"lr": 0.3, "lambda_l1": 0.5}
    assert tuned["additive__smiling__s7"].train.overrides == {"lr": 0.3, "lambda_l1": 3.0}
    assert tuned["additive__smiling__s7"].config_hash == plain["additive__smiling__s7"].config_hash
    assert tuned["additive__sad__s7"].config_hash != plain["additive__sad__s7"].config_hash


def test_per_edit_train_overrides_are_checked_against_the_recipe(suite_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"edits\[1\]\.train_overrides.*lamda_l1"):
        load_suite(suite_dir / "demo.yaml", ["edits.1.train_overrides={lamda_l1: 0.5}"])
