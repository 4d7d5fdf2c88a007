"""export round trips: each store read back with its own reader gives the run's params and summary values."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from asyrp_bench.export import export_run, summary_metrics
from asyrp_bench.results import RunDir
from tests._runs import make_run

SUITE = "name: toy\nsampler: {n_inv_step: 8, n_test_step: 6}\n"


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return RunDir(make_run(tmp_path, suite_yaml=SUITE).path)


def test_csv(run: RunDir) -> None:
    from asyrp_bench.cli import app

    result = CliRunner().invoke(app, ["export", str(run.path), "--to", "csv"])
    assert result.exit_code == 0, result.output
    back = pd.read_csv(result.output.strip().splitlines()[-1])
    pd.testing.assert_series_equal(back["value"], run.summary()["value"], check_names=False)


def test_tensorboard_round_trip(run: RunDir, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = export_run(run.path, "tensorboard", tmp_path / "tb")
    values = {}
    for events in folder.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            values[tag] = acc.Scalars(tag)[-1].value
    expected = summary_metrics(run)
    assert len(expected) > 10 and set(expected) <= set(values)
    assert all(math.isclose(values[k], v, rel_tol=1e-6) for k, v in expected.items())


def test_mlflow_round_trip(run: RunDir, tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    store = export_run(run.path, "mlflow", tmp_path / "mlruns")
    client = mlflow.tracking.MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name("toy")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.data.params["sampler.n_inv_step"] == "8" and found.data.params["sampler.n_test_step"] == "6"
    expected = {k.replace("/", "__"): v for k, v in summary_metrics(run).items()}
    assert found.data.metrics == pytest.approx(expected)


def test_unknown_target(run: RunDir) -> None:
    from asyrp_bench.errors import InputError

    with pytest.raises(InputError, match="choose one of csv"):
        export_run(run.path, "wandb")
