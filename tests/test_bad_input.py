"""Bad input on a real run directory: one-line errors naming the path or flag, nothing lost."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers.cli_run import run_cli

from selfloop.cli.app import main
from selfloop.cli.config_checks import memory_limit
from selfloop.run.atomic import format_bytes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished one-generation run, copied fresh into each test."""
    from conftest import TINY_RUN

    run = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli(
        [
            "fit",
            "--config",
            "configs/digits.yaml",
            *TINY_RUN,
            "--loop.run_dir",
            str(run),
            "--loop.generations",
            "1",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


@pytest.mark.slow
def test_resume_with_another_seed_is_refused_listing_the_keys(tiny_run_args, run):
    result = run_cli(tiny_run_args(run, "--loop.generations", "1", "--loop.seed", "1"))
    assert result.returncode == 2
    assert "loop.seed: 0 -> 1" in result.stderr and "--loop.run_dir" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_more_generations_is_a_harmless_change(tiny_run_args, run):
    before = (run / "metrics.csv").read_text()
    result = run_cli(tiny_run_args(run, "--loop.generations", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    after = (run / "metrics.csv").read_text()
    # Finished phases are not redone: their rows stay as they were, generation 2 is added.
    assert after.startswith(before) and "\n2,lenet," in after


@pytest.mark.slow
def test_manifest_edited_into_nonsense_names_the_file(tiny_run_args, run):
    (run / "manifest.json").write_text("{ not json")
    result = run_cli(tiny_run_args(run, "--loop.generations", "1"))
    assert result.returncode == 2
    assert str(run / "manifest.json") in result.stderr and "Traceback" not in result.stderr
    assert (run / "metrics.csv").is_file() and (run / "queue" / "gen_001.pt").is_file()


@pytest.mark.slow
def test_truncated_shard_is_reported_and_rebuilt_identically(tiny_run_args, run):
    shard = run / "queue" / "gen_001.pt"
    original = hashlib.sha256(shard.read_bytes()).hexdigest()
    shard.write_bytes(shard.read_bytes()[:100])
    result = run_cli(tiny_run_args(run, "--loop.generations", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(m.startswith(f"queue shard {shard} is missing or damaged") for m in result.warnings)
    manifest = json.loads((run / "manifest.json").read_text())
    # Rebuilt from the saved candidates with the same seeds: the very same bytes.
    assert manifest["queue"][0]["sha256"] == original
    assert not shard.exists() or hashlib.sha256(shard.read_bytes()).hexdigest() == original


@pytest.mark.slow
def test_nan_loss_stops_naming_generation_phase_and_arch(tiny_run_args, tmp_path):
    run = tmp_path / "nan"
    result = run_cli(tiny_run_args(run, "--loop.generations", "1", "--model.lr", "1e12"))
    assert result.returncode == 2
    assert "generation 0, classifier lenet" in result.stderr
    assert " is nan in epoch " in result.stderr or " is inf in epoch " in result.stderr
    assert "Traceback" not in result.stderr
    # Everything produced before the failure stays.
    assert (run / "config.yaml").is_file() and (run / "manifest.json").is_file()


# Values that cannot work are refused before any work: exit 2, one line naming the flag and the valid
# range, no usage dump, no run directory. In-process: each takes a parse (and at most the digits' load).
BAD_VALUES = {
    "zero-epochs": (
        ["--trainer.max_epochs", "0"],
        "--trainer.max_epochs must be >= 1 (the epoch cap of every classifier fit; 0 would evaluate "
        "untrained classifiers), got 0",
    ),
    "empty-panel": (
        ["--loop.archs", "[]"],
        "--loop.archs must name at least one arch (lenet, alexnet, vgg19, resnet50, mobilenet_v3, deit_s), "
        "got []; leave it out to train --model.arch alone",
    ),
    "image-size-0-dcgan": (
        ["--data.init_args.image_size", "0"],
        "--data.init_args.image_size must be 4 * 2^k >= 16 (16, 32, 64, 128, ...) for the generator "
        "ConditionalDCGAN, got 0",
    ),
    "image-size-24-dcgan": (
        ["--data.init_args.image_size", "24"],
        "--data.init_args.image_size must be 4 * 2^k >= 16 (16, 32, 64, 128, ...) for the generator "
        "ConditionalDCGAN, got 24",
    ),
    "image-size-20-stable-diffusion": (
        ["--generator", "selfloop.generators.stable_diffusion.StableDiffusionLoRA", "--data.init_args.image_size", "20"],
        "--data.init_args.image_size must be a multiple of 8 (8, 16, 24, ...; the VAE's factor) for the "
        "generator StableDiffusionLoRA, got 20, unless --generator.init_args.sample_resolution and "
        "--generator.init_args.train_resolution are set (the samples are then resized to the image size)",
    ),
    "batch-size-0": (["--data.init_args.batch_size", "0"], "--data.batch_size must be >= 1, got 0"),
    "not-an-int": (["--trainer.max_epochs", "abc"], "--trainer.max_epochs: expected int, got abc"),
    "not-an-arch": (
        ["--loop.archs", "[lenet, lenet5]"],
        "--loop.archs: expected one of 'lenet', 'alexnet', 'vgg19', 'resnet50', 'mobilenet_v3', 'deit_s', "
        "got lenet5",
    ),
    "unknown-flag": (["--loop.colour", "red"], "unrecognized arguments: --loop.colour red"),
    "negative-lr": (["--model.lr", "-1"], "--model.lr must be a finite number > 0, got -1.0"),
    "dropout-above-1": (["--model.dropout", "1.5"], "--model.dropout must be in [0, 1), got 1.5"),
    "generator-beta1-and-width": (
        ["--generator.init_args.beta1", "1", "--generator.init_args.width", "0"],
        "--generator.init_args.width must be an integer >= 1, got 0; "
        "--generator.init_args.beta1 must be in [0, 1), got 1.0",
    ),
    "seed-beyond-64-bit": (
        ["--loop.seed", "100000000000000000000"],
        "--loop.seed must be an integer in [0, 4294967295], got 100000000000000000000",
    ),
    "devices-0": (
        ["--trainer.devices", "0"],
        "the trainer settings --trainer.accelerator auto --trainer.devices 0 --trainer.num_nodes 1 "
        "--trainer.strategy auto cannot run here: `Trainer(devices='0')` value is not a valid input using cpu "
        "accelerator.",
    ),
    "too-few-samples-per-class": (
        ["--loop.samples_per_generation", "0.0001"],
        "--loop.samples_per_generation 0.0001 (a fraction of the 1,259 real training images) asks for 1 "
        "sample(s) per generation, fewer than 2 for each of the 10 classes; give a count of at least 20 (int) "
        "or a fraction of at least 0.0159 (float)",
    ),
}  # fmt: skip


def _refused(args: list[str], capsys, monkeypatch) -> str:
    """Run the CLI in this process; return its stderr after checking the refusal's form."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exited:
        main(args)
    err = capsys.readouterr().err
    assert exited.value.code == 2, err[-3000:]
    assert "usage:" not in err and "Traceback" not in err and "Subtypes:" not in err
    return err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("selfloop: error:")]


@pytest.mark.parametrize("case", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_value_that_cannot_work_is_refused_in_one_line_before_any_work(
    tiny_run_args, tmp_path, capsys, monkeypatch, case
):
    extra, message = case
    err = _refused(tiny_run_args(tmp_path / "run", *extra), capsys, monkeypatch)
    assert _error_lines(err) == [f"selfloop: error: {message}"]
    assert not (tmp_path / "run").exists()


def test_sample_count_beyond_memory_states_the_estimate(tiny_run_args, tmp_path, capsys, monkeypatch):
    err = _refused(
        tiny_run_args(tmp_path / "run", "--loop.samples_per_generation", "1000000000"), capsys, monkeypatch
    )
    # 1.25e9 candidates of 3x16x16 (r = 0.2): sampled twice (batches + concatenation) with int64 labels,
    # scored (10-class MC-dropout probabilities, twice, + scores), a full queue of 3 x 1e9 survivors
    # (twice) and the 1,259 real training images: 6.70e12 bytes.
    assert _error_lines(err) == [
        "selfloop: error: --loop.samples_per_generation 1000000000 asks for 1,250,000,000 candidate images "
        "of 3x16x16 per generation: about 6.1 TiB of memory with 3 generations of samples in the training set, more than "
        f"the {format_bytes(memory_limit())} available; give a smaller count (int) or fraction (float)"
    ]
    assert not (tmp_path / "run").exists()


def test_sample_fraction_beyond_memory_says_it_is_a_fraction(tiny_run_args, tmp_path, capsys, monkeypatch):
    # 1e9 parses as a float: a fraction of the real training set, not a count.
    err = _refused(
        tiny_run_args(tmp_path / "run", "--loop.samples_per_generation", "1e9"), capsys, monkeypatch
    )
    (line,) = _error_lines(err)
    assert line.startswith(
        "selfloop: error: --loop.samples_per_generation 1000000000.0 (a fraction of the 1,259 real training "
        "images; write 1000000000 for a count) asks for 1,573,750,000,000 candidate images of 3x16x16"
    )
    assert not (tmp_path / "run").exists()


def test_yaml_syntax_error_names_the_file_line_and_column(tiny_run_args, tmp_path, capsys, monkeypatch):
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  max_epochs: 1\nloop:\n  archs: [lenet\n  generations: 1\n")
    err = _refused(tiny_run_args(tmp_path / "run", "--config", str(config)), capsys, monkeypatch)
    assert _error_lines(err) == [
        f"selfloop: error: {config}: YAML syntax error at line 5, column 14: did not find expected ',' or ']' "
        "(while parsing a flow sequence)"
    ]
    assert "<unicode string>" not in err and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_run_without_its_manifest_is_refused_and_restoring_it_resumes(tiny_run_args, run):
    manifest = run / "manifest.json"
    saved = manifest.read_bytes()
    manifest.unlink()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    result = run_cli(tiny_run_args(run, "--loop.generations", "1"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("selfloop: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert errors[0].startswith(f"selfloop: error: {run} holds results of a run (")
    assert errors[0].endswith(
        f"but no manifest.json, so what was done cannot be checked and would be redone: restore {manifest}, or "
        "pass another --loop.run_dir (or none for a new version folder)"
    )
    # Nothing redone or rewritten (the lock file records the last holder).
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == before
    # The first way forward, followed: the restored manifest resumes the finished run as it was.
    manifest.write_bytes(saved)
    metrics = (run / "metrics.csv").read_bytes()
    result = run_cli(tiny_run_args(run, "--loop.generations", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "metrics.csv").read_bytes() == metrics


@pytest.mark.slow
def test_altered_fid_statistics_are_recomputed_with_a_warning(tiny_run_args, finished_run, run, tmp_path):
    untouched = tmp_path / "untouched"
    shutil.copytree(finished_run, untouched)
    assert run_cli(tiny_run_args(untouched, "--loop.generations", "2")).returncode == 0
    stats = run / "fid_real_stats.pt"
    data = bytearray(stats.read_bytes())
    data[-200:-100] = bytes(b ^ 0x55 for b in data[-200:-100])  # inside the stored tensors: still loads
    stats.write_bytes(bytes(data))
    result = run_cli(tiny_run_args(run, "--loop.generations", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [message for message in result.warnings if str(stats) in message]
    assert len(warnings) == 1 and warnings[0].endswith(
        f"{stats} does not match the hash in {run / 'manifest.json'} (edited or damaged); recomputed the real "
        "set's FID statistics from the real training set"
    )
    # The recomputed statistics are the original ones: generation 2's FID is what an untouched run logs.
    assert (run / "metrics.csv").read_bytes() == (untouched / "metrics.csv").read_bytes()
    assert stats.read_bytes() == (untouched / "fid_real_stats.pt").read_bytes()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_accelerator_without_a_gpu_is_refused_before_any_work(
    tiny_run_args, tmp_path, capsys, monkeypatch
):
    err = _refused(tiny_run_args(tmp_path / "run", "--trainer.accelerator", "gpu"), capsys, monkeypatch)
    assert _error_lines(err) == [
        "selfloop: error: the trainer settings --trainer.accelerator gpu --trainer.devices 1 --trainer.num_nodes 1 "
        "--trainer.strategy auto cannot run here: No supported gpu backend found!"
    ]
    assert not (tmp_path / "run").exists()
