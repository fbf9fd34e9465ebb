"""Every result file of a finished run is covered: a lost classifier is retrained on its own generation's
data, an edited or missing metrics.csv is rebuilt from the manifest, a missing config.yaml is rewritten,
and what cannot be rebuilt is refused in one line with nothing changed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from selfloop.cli.app import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "summary" not in p.parts and "phases" not in p.parts and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Finished 2-generation runs: the queue keeps both generations (3) or only the last one (1)."""
    from conftest import TINY_RUN

    runs = {}
    cwd = Path.cwd()
    for capacity in ("3", "1"):
        run = tmp_path_factory.mktemp(f"capacity{capacity}") / "run"
        args = ["fit", "--config", "configs/digits.yaml", *TINY_RUN, "--loop.generations", "2"]
        args += ["--loop.queue_capacity", capacity]
        import os

        os.chdir(ROOT)
        try:
            main([*args, "--loop.run_dir", str(run)])
        finally:
            os.chdir(cwd)
        runs[capacity] = (run, args)
    return runs


def _copy(finished, capacity: str, tmp_path: Path) -> tuple[Path, list[str]]:
    source, args = finished[capacity]
    run = tmp_path / "run"
    shutil.copytree(source, run)
    return run, [*args, "--loop.run_dir", str(run)]


def test_lost_classifier_is_retrained_on_its_own_generations_data(finished, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    run, args = _copy(finished, "3", tmp_path)
    before = _hashes(run)
    (run / "classifiers" / "gen_001" / "lenet.pt").unlink()
    with pytest.warns(UserWarning, match=r"classifiers/gen_001/lenet\.pt are missing or damaged; retraining"):
        main(args)
    # The same model and the same metrics, in the same rows: f_1 saw generation 1's queue, not the final one.
    after = _hashes(run)
    assert after["classifiers/gen_001/lenet.pt"] == before["classifiers/gen_001/lenet.pt"]
    assert (run / "metrics.csv").read_bytes() == (finished["3"][0] / "metrics.csv").read_bytes()


def test_lost_classifier_whose_data_left_the_queue_is_refused(finished, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    run, args = _copy(finished, "1", tmp_path)
    (run / "classifiers" / "gen_001" / "lenet.pt").unlink()
    before = _hashes(run)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("selfloop: error:")]
    assert len(errors) == 1
    assert "classifiers/gen_001/lenet.pt are missing or damaged, and they cannot be retrained" in errors[0]
    assert "generation(s) [1], which have left the queue" in errors[0]
    after = _hashes(run)
    assert after == before


@pytest.mark.parametrize("damage", ["edited", "deleted", "binary"])
def test_metrics_csv_is_rebuilt_from_the_manifest(finished, tmp_path, monkeypatch, damage):
    monkeypatch.chdir(ROOT)
    run, args = _copy(finished, "3", tmp_path)
    metrics = run / "metrics.csv"
    original = metrics.read_bytes()
    if damage == "edited":
        lines = metrics.read_text().splitlines(keepends=True)
        generation, arch, seed, metric, _ = lines[1].rstrip("\n").split(",")
        lines[1] = f"{generation},{arch},{seed},{metric},0.5\n"
        metrics.write_text("".join(lines))
    elif damage == "binary":
        metrics.write_bytes(b"\x89\xf6\x00garbage" * 100)
    else:
        metrics.unlink()
    with pytest.warns(UserWarning, match="metrics.csv is missing or differs from the rows"):
        main(args)
    assert metrics.read_bytes() == original


def test_missing_config_yaml_is_rewritten(finished, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    run, args = _copy(finished, "3", tmp_path)
    original = (run / "config.yaml").read_text()
    (run / "config.yaml").unlink()
    with pytest.warns(UserWarning, match="config.yaml is missing or was edited; rewrote it"):
        main(args)
    rewritten = (run / "config.yaml").read_text()
    # The same config, but for the run directory (the copy's own path).
    assert rewritten == original.replace(str(finished["3"][0]), str(run))


def test_damaged_shard_whose_sources_are_gone_is_refused_naming_them(finished, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    run, args = _copy(finished, "3", tmp_path)
    shard = run / "queue" / "gen_002.pt"
    shard.write_bytes(shard.read_bytes()[:100])
    (run / "generations" / "gen_002" / "candidates.pt").unlink()
    (run / "generations" / "gen_002" / "generator.pt").unlink()
    before = _hashes(run)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("selfloop: error:")]
    assert errors == [
        f"selfloop: error: generator weights {run / 'generations' / 'gen_002' / 'generator.pt'} are missing or "
        f"damaged, and rebuilding the queue shard {shard} (its saved candidates are missing or damaged too) needs "
        "them. Restore the file, or start a new run in another --loop.run_dir"
    ]
    assert "Traceback" not in err and _hashes(run) == before


def test_damaged_shard_and_damaged_scorer_classifier_are_both_rebuilt(finished, tmp_path, monkeypatch):
    # Rebuilding generation 2's shard needs f_1 (the filter's scorer): it is retrained first, on generation
    # 1's own data, and both files come back as they were (the old hint to edit the manifest never worked).
    monkeypatch.chdir(ROOT)
    run, args = _copy(finished, "3", tmp_path)
    before = _hashes(run)
    shard, weights = run / "queue" / "gen_002.pt", run / "classifiers" / "gen_001" / "lenet.pt"
    shard.write_bytes(shard.read_bytes()[:100])
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(UserWarning) as caught:
        main(args)
    messages = [str(w.message) for w in caught if str(run) in str(w.message)]
    assert any(m.startswith(f"queue shard {shard} is missing or damaged") for m in messages)
    assert (
        f"classifier weights {weights} are missing or damaged; retraining them on generation 1's data"
        in messages
    )
    after = _hashes(run)
    assert after["queue/gen_002.pt"] == before["queue/gen_002.pt"]
    assert after["classifiers/gen_001/lenet.pt"] == before["classifiers/gen_001/lenet.pt"]
    assert (run / "metrics.csv").read_bytes() == (finished["3"][0] / "metrics.csv").read_bytes()
