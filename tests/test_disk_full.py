"""Disk full while writing any result file: a clear error naming the file, nothing half-written, resumable."""

from __future__ import annotations

import errno
from pathlib import Path

import pandas as pd
import pytest

from asyrp_bench.errors import DiskWriteError
from asyrp_bench.results import (
    SCORES_COLUMNS,
    SUMMARY_COLUMNS,
    TMP_PREFIX,
    RunDir,
    RunWriter,
    write_cell_tables,
    write_json,
    write_text_atomic,
)
from tests._runs import make_run


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.write_text

    def write_text(self: Path, *args, **kwargs):
        if self.name.startswith(TMP_PREFIX):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def test_every_writer_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.txt").write_text("old")
    _full_disk(monkeypatch)
    with pytest.raises(DiskWriteError, match=rf"no space left on device while writing {tmp_path / 'a.txt'}"):
        write_text_atomic(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "old" and not list(tmp_path.glob(f"{TMP_PREFIX}*"))
    with pytest.raises(DiskWriteError, match=r"while writing .*manifest\.json"):
        write_json(tmp_path / "manifest.json", {"a": 1})
    with pytest.raises(DiskWriteError, match=r"while writing .*cell\.yaml"):
        write_cell_tables(tmp_path, pd.DataFrame(columns=SCORES_COLUMNS), pd.DataFrame(columns=SUMMARY_COLUMNS),
                          {"id": "x"})


def test_disk_full_mid_run_then_resume_gives_identical_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    whole = make_run(tmp_path / "a")
    partial = make_run(tmp_path / "b", stop_after=2)
    with monkeypatch.context() as patch:
        _full_disk(patch)
        with pytest.raises(DiskWriteError, match="no space left on device while writing"):
            make_run(tmp_path / "b", writer=RunWriter.resume(partial.path))
    make_run(tmp_path / "b", writer=RunWriter.resume(partial.path))
    assert RunDir(partial.path).manifest["status"] == "complete"
    for name in ("scores.csv", "summary.csv"):
        assert (whole.path / name).read_bytes() == (partial.path / name).read_bytes()
