"""Reading run directories and averaging over seeds, on run directories written by hand and by the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from selfloop.analysis.runs import (
    IGNORED_KEYS,
    RunLoadError,
    aggregate,
    by_group,
    distinguishing_settings,
    find_run_dirs,
    group_key,
    load_run,
    load_runs,
    run_finished,
    tidy_rows,
)
from selfloop.cli.app import SelfLoopCLI
from selfloop.run.compat import HARMLESS_KEYS

ROOT = Path(__file__).resolve().parents[2]


def digits_config(
    path: Path, seed: int, bias: str = "unbiased", generations: int = 1, archs=("lenet",)
) -> dict:
    """A trimmed resolved config as ``config.yaml`` holds it; per-run keys differ between seeds on purpose."""
    return {
        "seed_everything": False,
        "trainer": {"max_epochs": 1, "logger": None, "enable_progress_bar": seed % 2 == 0},
        "model": {"arch": "lenet", "lr": 0.001},
        "data": {
            "class_path": "selfloop.data.digits.ColoredDigitsDataModule",
            "init_args": {"root": f"/data/{seed}", "bias": bias, "image_size": 16, "num_workers": seed},
        },
        "filter": {"drop_fraction": 0.1},
        "loop": {
            "generations": generations,
            "seed": seed,
            "archs": list(archs) if archs is not None else None,
            "root": "lightning_logs",
            "name": f"name{seed}",
            "run_dir": str(path),
        },
    }


def write_run(path: Path, config: dict, metrics: dict[tuple[int, str, str], float], completed=None) -> Path:
    """Write config.yaml, manifest.json and metrics.csv in the formats the loop writes."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text("# lightning.pytorch==2.6\n" + yaml.safe_dump(config))
    if completed is None:
        gens, archs = config["loop"]["generations"], config["loop"]["archs"] or [config["model"]["arch"]]
        completed = [f"g{n}/classifier/{a}" for n in range(gens + 1) for a in archs]
    (path / "manifest.json").write_text(
        json.dumps({"seed": config["loop"]["seed"], "completed": completed, "format": 1})
    )
    with open(path / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["generation", "arch", "seed", "metric", "value"])
        for (g, arch, metric), value in metrics.items():
            writer.writerow([g, arch, config["loop"]["seed"], metric, repr(float(value))])
    return path


# md of lenet per seed at generations 0 and 1; seed 2 logged NaN at generation 1.
MD = {0: (0.1, 0.3), 1: (0.2, 0.5), 2: (0.4, math.nan)}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    for seed, (md0, md1) in MD.items():
        metrics = {
            (0, "lenet", "md"): md0,
            (1, "lenet", "md"): md1,
            (0, "lenet", "acc"): 0.9,
            (1, "generator", "num_kept"): 40,
        }
        write_run(
            root / "unbiased" / f"seed_{seed}",
            digits_config(root / "unbiased" / f"seed_{seed}", seed),
            metrics,
        )
    biased = root / "biased" / "seed_0"
    write_run(
        biased, digits_config(biased, 0, bias="biased"), {(0, "lenet", "md"): 0.7, (1, "lenet", "md"): 0.9}
    )
    return root


def test_groups_ignore_seed_and_paths_but_not_settings(sweep: Path) -> None:
    runs = load_runs([sweep])
    groups = by_group(runs)
    assert len(runs) == 4 and len(groups) == 2
    sizes = sorted(len(members) for members in groups.values())
    assert sizes == [1, 3]
    unbiased = next(m for m in groups.values() if len(m) == 3)
    assert [r.seed for r in unbiased] == [0, 1, 2]
    assert all(g.startswith("ColoredDigits-") for g in groups)
    assert "loop.seed" not in unbiased[0].group_config and "data.init_args.bias" in unbiased[0].group_config
    settings = distinguishing_settings(runs)
    assert {s["data.init_args.bias"] for s in settings.values()} == {"unbiased", "biased"}
    assert all(set(s) == {"data.init_args.bias"} for s in settings.values())


def test_aggregate_mean_and_sample_std_by_hand(sweep: Path) -> None:
    runs = load_runs([sweep / "unbiased"])
    rows = {(r["arch"], r["generation"]): r for r in aggregate(runs, "md")}
    # generation 0: values 0.1, 0.2, 0.4 -> mean 0.7/3; deviations -0.4/3, -0.1/3, 0.5/3; squares sum 0.42/9.
    g0 = rows["lenet", 0]
    assert g0["n"] == 3 and g0["seeds"] == [0, 1, 2]
    assert g0["mean"] == pytest.approx(0.7 / 3)
    assert g0["std"] == pytest.approx(math.sqrt(0.42 / 9 / 2))
    assert g0["std"] == pytest.approx(0.152752523165)
    # generation 1: seed 2 logged NaN, so n = 2: values 0.3, 0.5 -> mean 0.4, std sqrt(0.02) (ddof=1).
    g1 = rows["lenet", 1]
    assert (g1["n"], g1["seeds"]) == (2, [0, 1])
    assert g1["mean"] == pytest.approx(0.4)
    assert g1["std"] == pytest.approx(math.sqrt(0.02))


def test_aggregate_single_seed_has_zero_std(sweep: Path) -> None:
    (row,) = [r for r in aggregate(load_runs([sweep / "biased"]), "md") if r["generation"] == 1]
    assert (row["mean"], row["std"], row["n"]) == (0.9, 0.0, 1)


def test_generator_rows_and_tidy_table(sweep: Path) -> None:
    runs = load_runs([sweep / "unbiased" / "seed_1"])
    (run,) = runs
    assert run.seed == 1 and run.archs == ["lenet"] and run.generations == [0, 1]
    assert run.value(1, "generator", "num_kept") == 40.0
    assert math.isnan(run.value(5, "lenet", "md"))
    rows = tidy_rows(runs)
    assert {"group", "seed", "generation", "arch", "metric", "value"} == set(rows[0])
    assert len(rows) == 4


def test_finished_comes_from_manifest_and_config(tmp_path: Path) -> None:
    cfg = digits_config(tmp_path / "a", 0, generations=2, archs=("lenet", "vgg19"))
    done = write_run(tmp_path / "a", cfg, {(0, "lenet", "md"): 0.1})
    partial_cfg = digits_config(tmp_path / "b", 1, generations=2, archs=("lenet", "vgg19"))
    partial = write_run(
        tmp_path / "b", partial_cfg, {(0, "lenet", "md"): 0.1}, completed=["g0/classifier/lenet", "g1/filter"]
    )
    no_archs = digits_config(tmp_path / "c", 0, generations=1, archs=None)  # panel falls back to model.arch
    default_panel = write_run(tmp_path / "c", no_archs, {(0, "lenet", "md"): 0.1})
    assert run_finished(done) and not run_finished(partial) and run_finished(default_panel)
    assert not run_finished(tmp_path / "nowhere")
    assert [r.finished for r in load_runs([done, partial])] == [True, False]


def test_missing_and_invalid_run_directories_are_named(tmp_path: Path) -> None:
    with pytest.raises(RunLoadError, match="nowhere"):
        load_runs([tmp_path / "nowhere"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunLoadError, match=r"empty.*no config\.yaml"):
        load_runs([empty])
    broken = write_run(tmp_path / "broken", digits_config(tmp_path / "broken", 0), {(0, "lenet", "md"): 0.1})
    (broken / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunLoadError, match=r"broken.*metrics\.csv.*missing columns"):
        load_runs([broken])
    (broken / "metrics.csv").unlink()
    with pytest.raises(RunLoadError, match=r"broken.*no metrics\.csv"):
        load_runs([broken])


def test_every_unreadable_run_of_a_sweep_is_named_in_one_error(tmp_path: Path) -> None:
    good = write_run(tmp_path / "a_good", digits_config(tmp_path / "a_good", 0), {(0, "lenet", "md"): 0.1})
    bad_config = write_run(
        tmp_path / "b_run", digits_config(tmp_path / "b_run", 1), {(0, "lenet", "md"): 0.1}
    )
    (bad_config / "config.yaml").write_text("loop: [unclosed\n")
    bad_csv = write_run(tmp_path / "c_run", digits_config(tmp_path / "c_run", 2), {(0, "lenet", "md"): 0.1})
    (bad_csv / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunLoadError) as raised:
        load_runs([tmp_path])
    message = str(raised.value)
    assert message.startswith("2 run directories cannot be read: ") and "\n" not in message
    assert (
        f"{bad_config / 'config.yaml'}: cannot read the config (YAML syntax error at line 2, column 1: "
        in message
    )
    assert str(bad_csv / "metrics.csv") in message and "missing columns" in message
    assert str(good) not in message


def test_more_ignored_keys_merge_groups(sweep: Path) -> None:
    assert len(by_group(load_runs([sweep]))) == 2
    ignored = (*IGNORED_KEYS, "data.init_args.bias")
    merged = [load_run(p, ignored) for p in find_run_dirs([sweep])]
    assert len(by_group(merged)) == 1
    # Merged, the biased and unbiased runs of one seed would count as one seed twice: refused.
    with pytest.raises(RunLoadError, match=r"are both seed 0 of one experiment .* so pass only one of them"):
        load_runs([sweep], ignored=ignored)


@pytest.mark.slow
def test_real_runs_group_across_harmless_keys_but_not_result_keys(
    tiny_run_args, tmp_path, monkeypatch
) -> None:
    """Three run directories written by the CLI: seed, run name and a logging switch vary within a group."""
    monkeypatch.chdir(ROOT)
    common = ("--loop.generations", "1", "--loop.fid_extractor", "none")
    runs = {
        "seed0": (),
        "seed1": ("--loop.seed", "1", "--loop.name", "other", "--loop.grid_per_class", "4"),
        "capacity2": ("--loop.queue_capacity", "2"),
    }
    for name, extra in runs.items():
        SelfLoopCLI(args=tiny_run_args(tmp_path / name, *common, *extra))

    loaded = {r.path.name: r for r in load_runs([tmp_path])}
    assert set(loaded) == set(runs) and all(r.finished for r in loaded.values())  # the loop's phase keys
    assert (loaded["seed0"].seed, loaded["seed1"].seed) == (0, 1)
    assert loaded["seed0"].group == loaded["seed1"].group != loaded["capacity2"].group
    assert sorted(len(members) for members in by_group(loaded.values()).values()) == [1, 2]
    assert distinguishing_settings(list(loaded.values()))[loaded["capacity2"].group] == {
        "loop.queue_capacity": 2
    }
    # Every key a resume may change is left out of the group, except the number of generations.
    config = loaded["seed0"].group_config
    assert not any(k.startswith(h) for k in config for h in HARMLESS_KEYS if h != "loop.generations")
    assert config["loop.generations"] == 1 and "loop.seed" not in config


def test_empty_mapping_and_missing_mapping_give_one_group(tmp_path: Path) -> None:
    """Flattened as the resume check flattens: ``init_args: {}`` sets nothing, but ``None`` is a value."""
    base = digits_config(tmp_path / "a", 0)
    empty = {**base, "generator": {"class_path": "G", "init_args": {}}}
    missing = {**base, "generator": {"class_path": "G"}}
    none = {**base, "generator": {"class_path": "G", "init_args": None}}
    assert group_key(empty) == group_key(missing) != group_key(none)


def test_a_seed_counts_once_a_copy_is_noted_and_a_conflict_refused(tmp_path: Path) -> None:
    metrics = {(0, "lenet", "acc"): 0.9, (1, "lenet", "acc"): 0.8}
    original = write_run(tmp_path / "a", digits_config(tmp_path / "a", 3), metrics)
    copy = write_run(tmp_path / "b", digits_config(tmp_path / "b", 3), metrics)
    (run,) = load_runs([original, copy])
    assert run.path == original.resolve() and run.copies == [copy.resolve()]
    from selfloop.analysis.verdicts import metric_verdicts

    (verdict,) = [v for v in metric_verdicts([run]) if v.metric.name == "acc"]
    assert (
        f"{copy.resolve()} repeats seed 3 of {original.resolve()} with identical metrics: counted once"
        in verdict.notes
    )
    other = write_run(tmp_path / "c", digits_config(tmp_path / "c", 3), {**metrics, (1, "lenet", "acc"): 0.7})
    with pytest.raises(
        RunLoadError, match=r"are both seed 3 of one experiment .* a seed counts once, so pass only one"
    ):
        load_runs([original, other])
