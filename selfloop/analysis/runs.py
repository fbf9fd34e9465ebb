"""Read finished or partial run directories into one tidy table, and average metrics over seeds.

A run directory (see ``selfloop.run.layout.RunDirectory``) holds ``config.yaml`` (the resolved CLI config),
``manifest.json`` (the phases completed) and ``metrics.csv`` (``generation, arch, seed, metric, value``).
Runs are grouped into *experiments*: two runs belong to the same group when their configs agree on every
setting except those in ``IGNORED_KEYS`` (the seed, and the settings that a resumed run may change because
they cannot change a result), so the runs of one group differ only by seed and their metrics can be
averaged. The config is flattened and the phase keys are spelled by the run directory's own code
(``selfloop.run.compat``, ``selfloop.run.phases``), so the analysis reads a run the way the loop wrote it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from selfloop.core.catalogue import GENERATOR_ARCH
from selfloop.core.errors import SelfLoopError, yaml_syntax
from selfloop.run.compat import HARMLESS_KEYS, flatten
from selfloop.run.manifest import Manifest, ManifestError
from selfloop.run.phases import Phase

# Dotted config keys that do not define an experiment (a key names its subtree too: ``config`` drops every
# ``config.*``). They are the keys a resumed run may change (``HARMLESS_KEYS``: where the run and the data
# live, logging and loading switches), and two more:
#   * ``loop.seed`` is what varies within a group;
#   * ``trainer.default_root_dir`` only places Lightning's own files (the loop writes into the run dir).
# ``loop.generations`` is harmless to a resume (it extends a run) but still defines an experiment here:
# runs of different lengths give per-seed trends over different spans, which are not samples of one slope.
GROUP_DEFINING_HARMLESS_KEYS = ("loop.generations",)
IGNORED_KEYS: tuple[str, ...] = (
    *(k for k in HARMLESS_KEYS if k not in GROUP_DEFINING_HARMLESS_KEYS),
    "loop.seed",
    "trainer.default_root_dir",
)

METRICS_COLUMNS = ("generation", "arch", "seed", "metric", "value")


class RunLoadError(SelfLoopError, ValueError):
    """A path is not a readable run directory; the message names the path and what is wrong."""


@dataclass
class Run:
    """One run directory, read.

    Args:
        path: the run directory.
        config: the resolved config (nested, as in ``config.yaml``).
        seed: the run's seed (``loop.seed``).
        group: the experiment key, ``<data set>-<hash of group_config>``; equal for runs that differ only in
            the ``IGNORED_KEYS``.
        group_config: the flattened config (dotted keys) minus ``IGNORED_KEYS``, which the group key hashes.
        metrics: value by ``(generation, arch, metric)``; NaN values are kept.
        completed: the manifest's finished phase keys (empty without a manifest).
        finished: whether every generation's classifier phases are in the manifest (see ``run_finished``).
        copies: run directories with the same group, seed and metrics, loaded as this one (see ``load_runs``).
    """

    path: Path
    config: dict[str, Any]
    seed: int
    group: str
    group_config: dict[str, Any]
    metrics: dict[tuple[int, str, str], float]
    completed: list[str] = field(default_factory=list)
    finished: bool = False
    copies: list[Path] = field(default_factory=list)

    @property
    def data_name(self) -> str:
        """Short name of the data set: the data module's class name without ``DataModule``."""
        return data_name(self.config)

    @property
    def archs(self) -> list[str]:
        """Classifier archs with metrics, in the order of the config's panel, then any others."""
        present = {arch for _, arch, _ in self.metrics if arch != GENERATOR_ARCH}
        panel = [a for a in config_panel(self.config) if a in present]
        return panel + sorted(present - set(panel))

    @property
    def generations(self) -> list[int]:
        """Generations with at least one metric, ascending."""
        return sorted({g for g, _, _ in self.metrics})

    def value(self, generation: int, arch: str, metric: str) -> float:
        """One metric value, NaN when it was not logged."""
        return self.metrics.get((generation, arch, metric), math.nan)

    def rows(self) -> list[dict[str, Any]]:
        """The tidy rows of this run: ``group, seed, generation, arch, metric, value``."""
        return [
            {"group": self.group, "seed": self.seed, "generation": g, "arch": a, "metric": m, "value": v}
            for (g, a, m), v in sorted(self.metrics.items())
        ]


def data_name(config: Mapping[str, Any]) -> str:
    """The data module's class name without the ``DataModule`` suffix (``ColoredDigits``)."""
    data = config.get("data") or {}
    class_path = data.get("class_path", "") if isinstance(data, Mapping) else ""
    name = str(class_path).rsplit(".", 1)[-1] or "data"
    return name.removesuffix("DataModule") or name


def config_panel(config: Mapping[str, Any]) -> list[str]:
    """The classifier archs a run trains: ``loop.archs``, or ``model.arch`` alone when that is unset."""
    archs = (config.get("loop") or {}).get("archs")
    if archs:
        return [str(a) for a in archs]
    arch = (config.get("model") or {}).get("arch")
    return [str(arch)] if arch else []


def required_phases(config: Mapping[str, Any]) -> list[str]:
    """Manifest keys a finished run has: the classifier phase of every arch in generations 0..N.

    Classifier phases are the last of each generation, and generation n's classifiers need its filter
    phase, so these keys imply every other phase.

    Raises:
        RunLoadError: when the config has no ``loop.generations`` or no arch.
    """
    generations = (config.get("loop") or {}).get("generations")
    archs = config_panel(config)
    if not isinstance(generations, int) or not archs:
        raise RunLoadError(
            "the config names no loop.generations or no classifier arch (loop.archs / model.arch)"
        )
    return [Phase.classifier(n, arch).key for n in range(generations + 1) for arch in archs]


def run_finished(path: str | Path) -> bool:
    """Whether the run in ``path`` completed every phase.

    Decided from the run's own ``config.yaml`` (generations and panel) and ``manifest.json``; a missing
    or unreadable file means not finished (a rerun then starts or resumes it).

    Args:
        path: a run directory.
    """
    path = Path(path)
    try:
        config = _read_config(path / "config.yaml")
        completed = _read_completed(path / "manifest.json")
        return set(required_phases(config)) <= set(completed)
    except RunLoadError:
        return False


def group_config(config: Mapping[str, Any], ignored: Sequence[str] = IGNORED_KEYS) -> dict[str, Any]:
    """The config flattened as the resume check flattens it (``selfloop.run.compat.flatten``), minus the
    ignored keys and their subtrees.

    An empty mapping flattens to no key at all, so ``init_args: {}`` and a missing ``init_args`` give the
    same group; ``None`` stays a value.

    Args:
        config: the nested config.
        ignored: dotted keys to leave out.
    """
    return {
        k: v for k, v in flatten(config).items() if not any(k == i or k.startswith(f"{i}.") for i in ignored)
    }


def group_key(config: Mapping[str, Any], ignored: Sequence[str] = IGNORED_KEYS) -> str:
    """``<data set>-<8 hex digits>``: a stable, file-name-safe key of the experiment a config defines.

    Args:
        config: the nested config.
        ignored: dotted keys that do not define the experiment.
    """
    canonical = json.dumps(group_config(config, ignored), sort_keys=True, default=str)
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_]+', '_', data_name(config))}-{digest}"


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories named by ``paths``: each path is a run directory or a folder holding some below it.

    A run directory is a folder with a ``config.yaml``. Inside a parent folder, run directories without a
    ``metrics.csv`` yet (a run that has not finished a classifier) are skipped with a warning; a run
    directory named directly must be complete enough to load.

    Args:
        paths: run directories or folders of them (e.g. a sweep's ``--out``).

    Raises:
        RunLoadError: naming a path that does not exist or holds no run directory.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise RunLoadError(f"{path}: no such run directory")
        if (path / "config.yaml").is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise RunLoadError(f"{path}: not a run directory (a folder with config.yaml and metrics.csv)")
        below = sorted(p.parent for p in path.rglob("config.yaml"))
        if not below:
            raise RunLoadError(f"{path}: not a run directory and holds none (no config.yaml below it)")
        for run in below:
            if (run / "metrics.csv").is_file():
                found.append(run)
            else:
                warnings.warn(f"{run}: no metrics.csv yet; skipped", stacklevel=2)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


def load_run(path: str | Path, ignored: Sequence[str] = IGNORED_KEYS) -> Run:
    """Read one run directory, checked against its manifest.

    ``config.yaml`` must match the hash the manifest recorded. The metrics are the rows the manifest recorded
    as of the run's last finished phase: a ``metrics.csv`` that differs from them (edited, truncated, binary,
    header only) is named in a warning and the recorded rows are read instead. Without recorded rows (runs
    of older versions), ``metrics.csv`` is read as it is, and an infinite value is refused naming its line.

    Args:
        path: the run directory.
        ignored: config keys left out of the group key (see ``IGNORED_KEYS``).

    Raises:
        RunLoadError: naming the path and the file that is missing, malformed or not what the manifest recorded.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunLoadError(f"{path}: no such run directory")
    config = _read_config(path / "config.yaml")
    metrics_file = path / "metrics.csv"
    manifest_file = path / "manifest.json"
    manifest = _read_manifest(manifest_file) if manifest_file.is_file() else None
    if manifest is not None:
        _check_recorded_hash(path / "config.yaml", manifest, manifest_file)
    if manifest is not None and manifest.metrics is not None:
        metrics, csv_seeds = _recorded_metrics(metrics_file, manifest.metrics, manifest_file)
    elif metrics_file.is_file():
        rows = _read_metric_rows(metrics_file)
        metrics, csv_seeds = _parse_metric_rows(
            [(f"{metrics_file}, line {i + 2}", r) for i, r in enumerate(rows)]
        )
    else:
        raise RunLoadError(f"{path}: not a run directory with results (no metrics.csv)")
    completed = list(manifest.completed) if manifest is not None else []

    seed = (config.get("loop") or {}).get("seed")
    if not isinstance(seed, int):
        # A config without loop.seed can still be grouped by the seed every metrics row repeats.
        if len(csv_seeds) != 1:
            raise RunLoadError(f"{path}: config.yaml has no integer loop.seed and metrics.csv no single seed")
        seed = next(iter(csv_seeds))
    try:
        finished = set(required_phases(config)) <= set(completed)
    except RunLoadError as err:
        raise RunLoadError(f"{path / 'config.yaml'}: {err}") from None
    return Run(
        path=path,
        config=config,
        seed=seed,
        group=group_key(config, ignored),
        group_config=group_config(config, ignored),
        metrics=metrics,
        completed=completed,
        finished=finished,
    )


def load_runs(paths: Iterable[str | Path], ignored: Sequence[str] = IGNORED_KEYS) -> list[Run]:
    """Read run directories (or folders of them) into ``Run`` objects, ordered by group, then seed.

    Seeds are the replicates of every verdict, so each counts once: two runs of one group with the same seed
    and identical metrics (a run and its copy) are loaded once, the copy named in ``Run.copies``; with
    different metrics they are refused, since one seed cannot give two results.

    Args:
        paths: run directories, or folders holding run directories anywhere below them.
        ignored: config keys that do not define an experiment (see ``IGNORED_KEYS``).

    Raises:
        RunLoadError: naming every run directory that cannot be read and why (all of them, so that one
            pass finds every damaged run of a sweep), or both runs that repeat a seed with different metrics.
    """
    runs, unreadable = [], []
    for path in find_run_dirs(paths):
        try:
            runs.append(load_run(path, ignored))
        except RunLoadError as err:
            unreadable.append(str(err))
    if len(unreadable) == 1:
        raise RunLoadError(unreadable[0])
    if unreadable:
        raise RunLoadError(f"{len(unreadable)} run directories cannot be read: " + "; ".join(unreadable))
    runs.sort(key=lambda r: (r.group, r.seed, str(r.path)))
    kept: dict[tuple[str, int], Run] = {}
    for run in runs:
        first = kept.setdefault((run.group, run.seed), run)
        if first is run:
            continue
        if first.metrics != run.metrics:
            raise RunLoadError(
                f"{first.path} and {run.path} are both seed {run.seed} of one experiment (group {run.group}) but "
                "their metrics differ: a seed counts once, so pass only one of them"
            )
        first.copies.append(run.path)
    return list(kept.values())


def by_group(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs by group key, keys in sorted order.

    Args:
        runs: loaded runs.
    """
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.group].append(run)
    return dict(sorted(groups.items()))


def distinguishing_settings(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Per group, the settings whose values are not the same in every group (all settings for one group
    would be noise, so then only the data set's ``data.*`` settings are returned).

    Args:
        runs: loaded runs of one or more groups.
    """
    configs = {group: members[0].group_config for group, members in by_group(runs).items()}
    keys = sorted(set().union(*configs.values())) if configs else []
    if len(configs) <= 1:
        return {g: {k: v for k, v in c.items() if k.startswith("data.")} for g, c in configs.items()}
    differing = [
        k
        for k in keys
        if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs.values()}) > 1
    ]
    return {g: {k: c.get(k) for k in differing} for g, c in configs.items()}


def tidy_rows(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """All runs' metrics as one tidy table: dicts with ``group, seed, generation, arch, metric, value``.

    Args:
        runs: loaded runs.
    """
    return [row for run in runs for row in run.rows()]


def metric_names(runs: Iterable[Run], arch: str | None = None) -> set[str]:
    """Metric names logged by any run (for one arch, or for classifier archs when ``arch`` is None).

    Args:
        runs: loaded runs.
        arch: an arch such as ``generator``; None means every arch but the generator.
    """
    return {
        m
        for run in runs
        for _, a, m in run.metrics
        if (a == arch if arch is not None else a != GENERATOR_ARCH)
    }


def aggregate(runs: Iterable[Run], metric: str) -> list[dict[str, Any]]:
    """Mean and spread of one metric over the seeds of each group, per arch and generation.

    NaN values (and runs that did not log the metric) are left out, so ``n`` is the number of runs with
    a finite value. ``std`` is the sample standard deviation (``ddof=1``); with a single run it is 0, not
    NaN, so a one-seed result plots as a line without a band. With ``n == 0`` mean and std are NaN (only
    when every run logged NaN, since absent values make no row).

    Args:
        runs: loaded runs, of one or more groups.
        metric: a metric name, e.g. ``md`` or ``fid_kept`` (generator rows have arch ``generator``).

    Returns:
        Dicts with ``group, arch, generation, mean, std, n, seeds`` sorted by group, arch, generation;
        ``seeds`` lists the seeds that contributed.
    """
    cells: dict[tuple[str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for run in runs:
        for (generation, arch, name), value in run.metrics.items():
            if name == metric:
                cells[run.group, arch, generation].append((run.seed, value))
    rows = []
    for (group, arch, generation), entries in sorted(cells.items()):
        values = np.array([v for _, v in entries if math.isfinite(v)], dtype=float)
        n = len(values)
        mean = float(values.mean()) if n else math.nan
        std = float(values.std(ddof=1)) if n > 1 else (0.0 if n == 1 else math.nan)
        seeds = sorted(s for s, v in entries if math.isfinite(v))
        rows.append(
            {
                "group": group,
                "arch": arch,
                "generation": generation,
                "mean": mean,
                "std": std,
                "n": n,
                "seeds": seeds,
            }
        )
    return rows


# File readers ------------------------------------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunLoadError(f"{path.parent}: not a run directory (no config.yaml)")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        reason = (
            f"not UTF-8 text: {err.reason} at byte {err.start}"
            if isinstance(err, UnicodeDecodeError)
            else yaml_syntax(err) or err
        )
        raise RunLoadError(f"{path}: cannot read the config ({reason})") from None
    if not isinstance(config, dict):
        raise RunLoadError(f"{path}: not a config (expected a YAML mapping)")
    return config


def _read_manifest(path: Path) -> Manifest:
    try:
        return Manifest.load(path)
    except ManifestError as err:
        raise RunLoadError(str(err)) from None


def _read_completed(path: Path) -> list[str]:
    return list(_read_manifest(path).completed)


def _check_recorded_hash(path: Path, manifest: Manifest, manifest_file: Path) -> None:
    recorded = manifest.files.get(path.name)
    if recorded is None:
        return  # written by a version that did not record its hash
    if not path.is_file() or _sha256(path) != recorded:
        raise RunLoadError(
            f"{path}: does not match the hash in {manifest_file} (edited or damaged); rerun the run's command "
            "with the same --loop.run_dir to rewrite it, then report again"
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recorded_metrics(
    path: Path, recorded: list[dict[str, str]], manifest_file: Path
) -> tuple[dict[tuple[int, str, str], float], set[int]]:
    """The metrics the manifest recorded; a ``metrics.csv`` that differs from them is named in a warning.

    Rows after the recorded ones belong to a phase that was cut short (a resume redoes it): not read.
    """
    try:
        rows = _read_metric_rows(path) if path.is_file() else None
    except RunLoadError:
        rows = None
    if rows is None or rows[: len(recorded)] != recorded:
        warnings.warn(
            f"{path} is missing or differs from the {len(recorded)} rows {manifest_file} recorded (edited, "
            "truncated or damaged); read the recorded rows instead (a resume of the run rewrites the file)",
            stacklevel=3,
        )
    return _parse_metric_rows([(f"{manifest_file}, recorded row {i + 1}", r) for i, r in enumerate(recorded)])


def _read_metric_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = set(METRICS_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise RunLoadError(f"{path}: not a metrics table (missing columns {sorted(missing)})")
            return list(reader)
    except UnicodeDecodeError as err:
        raise RunLoadError(
            f"{path}: not a metrics table (not UTF-8 text: {err.reason} at byte {err.start})"
        ) from None
    except csv.Error as err:
        raise RunLoadError(f"{path}: not a metrics table ({err})") from None
    except OSError as err:
        raise RunLoadError(f"{path}: cannot read ({err.strerror or err})") from None


def _parse_metric_rows(
    rows: list[tuple[str, dict[str, str]]],
) -> tuple[dict[tuple[int, str, str], float], set[int]]:
    """Values by (generation, arch, metric) and the seeds of ``(where, row)`` pairs (``where`` names the file
    and line); NaN (an empty subgroup) is kept, an infinite value is refused."""
    metrics: dict[tuple[int, str, str], float] = {}
    seeds: set[int] = set()
    for where, row in rows:
        try:
            key = (int(row["generation"]), row["arch"], row["metric"])
            value = float(row["value"]) if row["value"] not in ("", None) else math.nan
            seeds.add(int(row["seed"]))
        except (KeyError, TypeError, ValueError):
            raise RunLoadError(f"{where}: malformed row {dict(row)}") from None
        if math.isinf(value):
            raise RunLoadError(
                f"{where}: {row['metric']} of {row['arch']} in generation {row['generation']} is {value}, not a "
                "finite number (the loop never writes one): restore the file or leave the run out"
            )
        metrics[key] = value  # a later row for the same key replaces the earlier, as the writer does
    return metrics, seeds
