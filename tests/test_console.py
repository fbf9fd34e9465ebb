"""The console: Lightning's banners silenced where they arise, a line per phase, the summary at the end."""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch.utils.data import DataLoader, TensorDataset

from selfloop.console.progress import PhaseProgress, format_duration, parse_duration
from selfloop.console.quiet import quiet_lightning
from selfloop.console.summary import next_commands, print_summary
from selfloop.run.layout import RunDirectory
from selfloop.run.manifest import Manifest
from selfloop.run.metrics_log import MetricsLog
from selfloop.run.phases import Phase, PhaseRunner
from selfloop.run.queue import StackingQueue

BANNERS = ("GPU available:", "TPU available:", "💡 Tip", "`Trainer.fit` stopped: `max_epochs=1` reached")
VAL_NOTICE = "You passed in a `val_dataloader` but have no `validation_step`"


class WarningModel(L.LightningModule):
    """A tiny regression whose training step warns: a warning that is not Lightning's."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        warnings.warn("the user's own warning", UserWarning, stacklevel=1)
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class WithValidationSplit(L.LightningDataModule):
    """Offers a validation split that the model does not use, as the loop's datamodule does for generators."""

    def _loader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(0)
        return DataLoader(
            TensorDataset(torch.randn(8, 4, generator=generator), torch.randn(8, 1)), batch_size=4
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()


def _fit(tmp_path) -> None:
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(WarningModel(), datamodule=WithValidationSplit())


def _fit_and_capture(tmp_path, capfd, caplog, quiet: bool) -> tuple[str, list[str]]:
    """Console text (stdout, stderr and any logging that propagated to the root logger) and warnings."""
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught:
        # Every warning is shown, as for a user who asked for all: only the quiet block may drop one.
        warnings.simplefilter("always")
        with quiet_lightning() if quiet else contextlib.nullcontext():
            _fit(tmp_path)
            rank_zero_info("[selfloop] a line of the loop's own")
    out, err = capfd.readouterr()
    return out + err + caplog.text, [str(w.message) for w in caught]


def test_quiet_lightning_drops_the_banners_and_keeps_every_other_message(tmp_path, capfd, caplog):
    console, caught = _fit_and_capture(tmp_path, capfd, caplog, quiet=True)
    for banner in BANNERS:
        assert banner not in console
    assert VAL_NOTICE not in " ".join(caught)
    # Same logger as the banners, and a warning raised inside the fit: both still reach the user.
    assert "[selfloop] a line of the loop's own" in console
    assert "the user's own warning" in caught

    # Leaving the block removes the filters: the very same fit shows the banners again.
    console, caught = _fit_and_capture(tmp_path, capfd, caplog, quiet=False)
    for banner in BANNERS:
        assert banner in console
    assert any(VAL_NOTICE in message for message in caught)


def test_durations_read_as_seconds_minutes_or_hours():
    assert format_duration(12.34) == "12.3 s"
    assert format_duration(100) == "1 min 40 s"
    assert format_duration(2 * 3600 + 5 * 60 + 10) == "2 h 05 min"


def test_a_printed_duration_reads_back_as_the_seconds_it_shows():
    for seconds, shown in [(12.34, 12.3), (100, 100), (2 * 3600 + 5 * 60 + 10, 2 * 3600 + 5 * 60)]:
        assert parse_duration(format_duration(seconds)) == pytest.approx(shown)
    with pytest.raises(ValueError, match="not a duration of the console: '1 min 40'"):
        parse_duration("1 min 40")


@pytest.fixture
def runner(tmp_path) -> PhaseRunner:
    run = RunDirectory(tmp_path / "lightning_logs" / "digits" / "version_0")
    run.create()
    manifest = Manifest(seed=0)
    queue = StackingQueue.from_state(run.queue_dir, 3, [])
    return PhaseRunner(run, manifest, queue, MetricsLog(run.metrics_file, run.summary_dir, 0))


def _clock(times: list[float]):
    ticks = iter(times)
    return lambda: next(ticks)


def _progress(runner: PhaseRunner, times: list[float], archs=("lenet", "alexnet"), generations=1):
    stream = io.StringIO()
    runner.progress = PhaseProgress(generations, archs, stream=stream, clock=_clock(times))
    return stream


def _generation_one(runner: PhaseRunner) -> None:
    runner.begin(Phase.generator(1))
    for phase in (Phase.generator(1), Phase.sample(1), Phase.filter(1)):
        runner.complete(phase)


def test_progress_prints_a_line_per_phase_start_and_end_with_the_run_eta(runner):
    # One clock reading per begin and per complete, in run order.
    times = [0, 10, 10, 30, 31, 71, 72, 75, 75, 87, 87, 117]
    stream = _progress(runner, times)
    for arch in ("lenet", "alexnet"):
        runner.begin(Phase.classifier(0, arch))
        runner.complete(Phase.classifier(0, arch))
    _generation_one(runner)
    for arch in ("lenet", "alexnet"):
        runner.begin(Phase.classifier(1, arch))
        runner.complete(Phase.classifier(1, arch))

    assert stream.getvalue().splitlines() == [
        "[selfloop] g0/1 classifier lenet · start",
        # Left: g0 alexnet and the generator, neither timed yet: no lower bound, which a long generator
        # fit would make meaningless.
        "[selfloop] g0/1 classifier lenet · done in 10.0 s · run ETA unknown",
        "[selfloop] g0/1 classifier alexnet · start",
        "[selfloop] g0/1 classifier alexnet · done in 20.0 s · run ETA unknown",
        "[selfloop] g1/1 generator · start",
        "[selfloop] g1/1 generator · done in 40.0 s · run ETA unknown",
        "[selfloop] g1/1 sample · done in 1.0 s · run ETA unknown",
        # The generator unit took 45 s (from the end of the unit before it), and is timed now.
        "[selfloop] g1/1 filter · done in 3.0 s · run ETA 30.0 s",
        "[selfloop] g1/1 classifier lenet · start",
        "[selfloop] g1/1 classifier lenet · done in 12.0 s · run ETA 20.0 s",
        "[selfloop] g1/1 classifier alexnet · start",
        "[selfloop] g1/1 classifier alexnet · done in 30.0 s · run ETA 0.0 s",
    ]


def test_progress_of_a_resumed_run_counts_only_the_phases_left(runner):
    # Generation 0 was done before the interruption: only generation 1 is left.
    runner.manifest.completed += ["g0/classifier/lenet"]
    times = [100, 160, 161, 162, 162, 170]
    stream = _progress(runner, times, archs=("lenet",), generations=1)
    _generation_one(runner)
    runner.begin(Phase.classifier(1, "lenet"))
    runner.complete(Phase.classifier(1, "lenet"))
    lines = stream.getvalue().splitlines()
    # The generator took 62 s, but g1 lenet, all that is left, has not been timed in this process.
    assert lines[3] == "[selfloop] g1/1 filter · done in 1.0 s · run ETA unknown"
    assert lines[-1] == "[selfloop] g1/1 classifier lenet · done in 8.0 s · run ETA 0.0 s"


def test_a_resumed_run_estimates_from_the_units_the_manifest_recorded_and_records_its_own(runner):
    # A first process finished generation 0 and generation 1 (generator unit 60 s, LeNet 8 s and 10 s) and
    # recorded them in the manifest; a new process resumes at generator 2 of 2.
    first = _progress(runner, [0, 8, 8, 50, 55, 68, 68, 78], archs=("lenet",), generations=2)
    runner.begin(Phase.classifier(0, "lenet"))
    runner.complete(Phase.classifier(0, "lenet"))
    _generation_one(runner)
    runner.begin(Phase.classifier(1, "lenet"))
    runner.complete(Phase.classifier(1, "lenet"))
    assert (
        first.getvalue().splitlines()[-1]
        == "[selfloop] g1/2 classifier lenet · done in 10.0 s · run ETA 1 min 9 s"
    )
    recorded = Manifest.load(runner.run.manifest_file)
    assert recorded.unit_seconds == {"g0/classifier/lenet": 8, "g1/filter": 60, "g1/classifier/lenet": 10}

    runner.manifest = recorded
    stream = io.StringIO()
    runner.progress = PhaseProgress(
        2, ("lenet",), stream=stream, clock=_clock([1000, 1050, 1053, 1054]), recorded=recorded.unit_seconds
    )
    runner.begin(Phase.generator(2))
    runner.complete(Phase.generator(2))
    runner.complete(Phase.sample(2))
    runner.complete(Phase.filter(2))
    lines = stream.getvalue().splitlines()
    # Left after generator 2's fit: the rest of its unit (60 s, from the record) and LeNet 2 (mean of 8 and 10).
    assert lines[1] == "[selfloop] g2/2 generator · done in 50.0 s · run ETA 1 min 9 s"
    # Generator 2's unit took 54 s in this process; LeNet 2 is left.
    assert lines[-1] == "[selfloop] g2/2 filter · done in 1.0 s · run ETA 9.0 s"
    assert Manifest.load(runner.run.manifest_file).unit_seconds["g2/filter"] == 54


def test_a_running_fit_estimates_its_phase_from_its_steps_and_the_runs_eta_from_that(runner):
    # Generation 0's classifier took 20 s; generator 1 of 2 started at 20 s. Every call reads the clock once.
    times = [0, 20, 20, 35, 50, 80, 90, 90]
    stream = _progress(runner, times, archs=("lenet",), generations=2)
    runner.progress.interval = 30.0
    runner.begin(Phase.classifier(0, "lenet"))
    runner.complete(Phase.classifier(0, "lenet"))
    runner.begin(Phase.generator(1))
    completed = runner.manifest.completed
    runner.progress.fit_progress(Phase.generator(1), 0.1, completed)  # 15 s into the fit: too soon for a line
    runner.progress.fit_progress(Phase.generator(1), 0.25, completed)  # 30 s in
    runner.progress.fit_progress(Phase.generator(1), 0.5, completed)  # 30 s after the last line
    runner.progress.fit_progress(Phase.generator(1), 0.6, completed)  # 10 s after it: no line
    runner.complete(Phase.generator(1))  # 70 s after the fit began
    lines = stream.getvalue().splitlines()
    # 30 s for a quarter of the steps: the unit takes 120 s, so 90 s are left of it; generator 2 (not timed
    # yet) is estimated at 120 s too; the classifiers of generations 1 and 2 at 20 s each: 250 s.
    assert lines[2:] == [
        "[selfloop] g1/2 generator · start",
        "[selfloop] g1/2 generator · 25% of its steps · run ETA 4 min 10 s",
        # 60 s for half: 120 s again, 60 s left of it.
        "[selfloop] g1/2 generator · 50% of its steps · run ETA 3 min 40 s",
        # The fit's time counts from its start, not from its last progress line.
        "[selfloop] g1/2 generator · done in 1 min 10 s · run ETA unknown",
    ]


def test_progress_prints_nothing_on_other_ranks(runner, monkeypatch):
    stream = _progress(runner, [0, 1])
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    runner.begin(Phase.classifier(0, "lenet"))
    runner.complete(Phase.classifier(0, "lenet"))
    assert stream.getvalue() == ""
    assert runner.manifest.is_done("g0/classifier/lenet")


def _log_a_run(runner: PhaseRunner) -> None:
    metrics = runner.metrics
    metrics.log(0, "subgroup_oracle", {"subgroup_acc": 0.99})
    for n in range(3):
        for arch, shift in (("lenet", 0.0), ("alexnet", 0.05)):
            metrics.log(
                n,
                arch,
                {
                    "acc": 0.91 - 0.01 * n - shift,
                    "md": math.nan if (n, arch) == (2, "alexnet") else 0.02 + 0.03 * n,
                    "worst_group_acc": 0.8 - 0.1 * n,
                    "subgroup_acc": [0.9, 0.85, 0.8],
                },
            )
        if n >= 1:
            metrics.log(n, "generator", {"gen_label_acc": 0.84 - 0.02 * n, "fid_raw": 30.0 + 5.5 * n})
    metrics.close()


def test_summary_shows_the_metrics_csv_values_per_generation_and_arch_then_the_next_commands(runner, capsys):
    _log_a_run(runner)
    print_summary(runner)
    text = capsys.readouterr().out
    head, _, commands = text.partition("\nnext:\n")
    lines = head.splitlines()
    assert lines[0] == f"[selfloop] summary of {runner.run.path}"
    header, *body = (line.split() for line in lines[1:])
    assert header == ["generation", "arch", "acc", "md", "worst_group_acc", "gen_label_acc", "fid_raw"]
    # A row per generation and classifier arch (not the subgroup oracle, not the generator).
    assert [(row[0], row[1]) for row in body] == [(str(n), a) for n in range(3) for a in ("lenet", "alexnet")]

    values = {
        (int(r["generation"]), r["arch"], r["metric"]): float(r["value"]) for r in runner.metrics.read()
    }
    for row in body:
        n, arch = int(row[0]), row[1]
        for column, cell in zip(header[2:5], row[2:5], strict=True):
            expected = values[n, arch, column]
            assert cell == ("nan" if math.isnan(expected) else f"{expected:.4f}")
        if n == 0:
            assert row[5:] == ["-", "-"]  # no generator before generation 1
        else:
            assert row[5] == f"{values[n, 'generator', 'gen_label_acc']:.4f}"
            assert row[6] == f"{values[n, 'generator', 'fid_raw']:.2f}"
    assert body[5][3] == "nan"  # alexnet's md at generation 2 was NaN

    runs_root = runner.run.path.parent
    assert commands.splitlines() == [f"  {c}" for c in next_commands(runner.run.path, runs_root)]
    assert commands.splitlines() == [
        f"  tensorboard --logdir {runner.run.path / 'summary'}",
        f"  selfloop report {runs_root} --out report/",
    ]


def test_summary_of_a_run_without_generator_metrics_leaves_their_columns_empty(runner, capsys):
    runner.metrics.log(0, "resnet50", {"acc": 0.75, "drop_object_gray": 0.3})  # Hard ImageNet: no md
    runner.metrics.close()
    print_summary(runner, runs_root="runs")
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["0", "resnet50", "0.7500", "-", "-", "-", "-"]
    assert lines[-1] == "  selfloop report runs --out report/"
