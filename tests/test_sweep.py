"""scripts/sweep.py and scripts/sweep_slurm.sh: the commands they run, and skipping finished runs."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def load_sweep():
    spec = importlib.util.spec_from_file_location("sweep_script", REPO / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep = load_sweep()


def expected(config: Path, seed: int, out: Path, *extra: str) -> str:
    return shlex.join(
        [sys.executable, str(REPO / "main.py"), "fit", "--config", str(config),
         "--loop.run_dir", str(out / config.stem / f"seed_{seed}"), "--loop.seed", str(seed), *extra]
    )  # fmt: skip


def write_run(path: Path, completed: list[str], generations: int = 1, archs=("lenet",)) -> None:
    """The run directory files the finished check reads: config.yaml and manifest.json."""
    path.mkdir(parents=True)
    config = {
        "model": {"arch": "lenet"},
        "loop": {"generations": generations, "archs": list(archs) if archs else None},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "manifest.json").write_text(json.dumps({"seed": 0, "completed": completed, "format": 1}))


@pytest.fixture
def configs(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    for p in paths:
        p.write_text("loop:\n  generations: 1\n")
    return paths


def test_dry_run_prints_commands_and_skips_finished_run(tmp_path: Path, configs: list[Path], capsys) -> None:
    out = tmp_path / "sweeps"
    finished = ["g0/classifier/lenet", "g1/generator", "g1/filter", "g1/classifier/lenet"]
    write_run(out / "a" / "seed_1", finished)
    write_run(out / "b" / "seed_0", finished[:-1])  # interrupted before its last classifier: resumed
    code = sweep.main(
        [
            "--configs",
            *map(str, configs),
            "--seeds",
            "0",
            "1",
            "--out",
            str(out),
            "--dry-run",
            "--",
            "--trainer.max_epochs",
            "2",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    extra = ("--trainer.max_epochs", "2")
    assert lines == [
        expected(configs[0], 0, out, *extra),
        f"[sweep 2/4] skip (finished): {out / 'a' / 'seed_1'}",
        expected(configs[1], 0, out, *extra),
        expected(configs[1], 1, out, *extra),
    ]
    assert not (out / "a" / "seed_0").exists()  # a dry run creates nothing


def test_finished_uses_the_runs_own_panel_and_generations(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(
        run, ["g0/classifier/lenet", "g0/classifier/vgg19", "g1/classifier/lenet"], archs=("lenet", "vgg19")
    )
    assert not sweep.run_finished(run)
    default_panel = tmp_path / "default"
    write_run(
        default_panel, ["g0/classifier/lenet", "g1/classifier/lenet"], archs=None
    )  # archs null -> model.arch
    assert sweep.run_finished(default_panel)
    assert sweep.plan(["a", "b"], [0, 1]) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]


def test_failed_run_does_not_stop_the_sweep(tmp_path: Path, configs: list[Path], monkeypatch, capsys) -> None:
    calls: list[tuple[str, int]] = []

    def fake_command(config, seed, out, extra=(), python=sys.executable):
        calls.append((Path(config).name, seed))
        return [python, "-c", f"import sys; sys.exit({3 if seed == 0 else 0})"]

    monkeypatch.setattr(sweep, "command", fake_command)
    code = sweep.main(["--configs", *map(str, configs), "--seeds", "0", "1", "--out", str(tmp_path / "o")])
    assert code == 1 and len(calls) == 4
    assert "2 of 4 runs failed" in capsys.readouterr().err


def test_terminated_run_stops_the_sweep(tmp_path: Path, configs: list[Path], monkeypatch) -> None:
    monkeypatch.setattr(sweep, "command", lambda *a, **k: [sys.executable, "-c", "import sys; sys.exit(143)"])
    assert (
        sweep.main(["--configs", *map(str, configs), "--seeds", "0", "1", "--out", str(tmp_path / "o")])
        == 143
    )


def test_bad_arguments(tmp_path: Path, configs: list[Path]) -> None:
    with pytest.raises(SystemExit) as raised:
        sweep.main(["--configs", str(tmp_path / "missing.yaml"), "--seeds", "0", "--out", str(tmp_path)])
    assert raised.value.code == 2
    twin = tmp_path / "sub" / "a.yaml"
    twin.parent.mkdir()
    twin.write_text("{}\n")
    with pytest.raises(SystemExit):
        sweep.main(["--configs", str(configs[0]), str(twin), "--seeds", "0", "--out", str(tmp_path)])


def test_slurm_array_task_maps_to_config_and_seed(tmp_path: Path, configs: list[Path]) -> None:
    script = REPO / "scripts" / "sweep_slurm.sh"
    header = script.read_text()
    assert "#SBATCH --requeue" in header and "#SBATCH --signal=TERM@120" in header
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env |= {
        "CONFIGS": " ".join(map(str, configs)),
        "SEEDS": "0 1 2",
        "OUT": str(tmp_path / "out"),
        "PYTHON": sys.executable,
        "SWEEP_DRY_RUN": "1",
        "SLURM_ARRAY_TASK_ID": "4",  # config 4 // 3 = 1 (b), seed index 4 % 3 = 1
    }
    done = subprocess.run(
        ["bash", str(script), "--trainer.max_epochs", "1"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        expected(configs[1], 1, tmp_path / "out", "--trainer.max_epochs", "1")
    ]
    env["SLURM_ARRAY_TASK_ID"] = "6"
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "outside 0..5" in done.stderr


def test_sigterm_is_forwarded_to_the_run(tmp_path: Path, configs: list[Path], monkeypatch) -> None:
    # The child stands for main.py: it exits 143 on TERM, as the CLI does after a graceful stop.
    child = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(143)); time.sleep(20)"
    )
    monkeypatch.setattr(sweep, "command", lambda *a, **k: [sys.executable, "-c", child])
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        code = sweep.main(["--configs", *map(str, configs), "--seeds", "0", "--out", str(tmp_path / "o")])
    finally:
        timer.cancel()
    assert code == 143 and time.monotonic() - started < 15
