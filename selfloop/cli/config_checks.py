"""Values that cannot work, refused before any work starts: one line per problem, naming the flag and
the valid range.

``problems`` reads the parsed ``fit`` config (nothing instantiated, nothing read from disk): the plain
values of ``value_checks``, an empty ``--loop.archs`` and an image size the chosen generator cannot
produce. ``sample_memory_problem`` needs the real training set's size (``samples_per_generation`` may
be a fraction of it), so the CLI calls it once the real data is loaded, still before a run directory
exists.
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from selfloop.classifiers.backbones import Arch
from selfloop.classifiers.pretrained import PRETRAINED_ARCHS, weights_problem
from selfloop.cli.value_checks import value_problems
from selfloop.data.errors import CorruptDatasetError, DatasetNotFoundError
from selfloop.generators.base import ConditionalGenerator
from selfloop.metrics.fid import inception_weights_problem
from selfloop.run.atomic import format_bytes

if TYPE_CHECKING:
    from jsonargparse import Namespace

    from selfloop.data.base import SelfLoopDataModule
    from selfloop.filtering.sample_filter import SampleFilter
    from selfloop.training.loop_config import LoopConfig

IMAGE_SIZE_FLAG = "--data.init_args.image_size"
# cgroup v2 and v1 memory limits (a container's or a SLURM job's share of the machine).
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def problems(config: Namespace) -> list[str]:
    """Messages naming each flag of the parsed ``fit`` config whose value cannot work (empty if none): the
    plain values (``value_checks``), an empty panel and an image size the chosen generator cannot make."""
    return value_problems(config) + [p for p in (_panel(config), _image_size(config)) if p]


def _panel(config: Namespace) -> str | None:
    archs = config.get("loop.archs")
    if archs is not None and len(archs) == 0:
        return (
            f"--loop.archs must name at least one arch ({', '.join(get_args(Arch))}), got []; "
            "leave it out to train --model.arch alone"
        )
    return None


def _image_size(config: Namespace) -> str | None:
    data_class = _class(config.get("data.class_path"))
    size = config.get("data.init_args.image_size", getattr(data_class, "image_size", None))
    if not isinstance(size, int) or isinstance(size, bool):
        return None
    generator = _generator_class(config)
    if generator is None:
        return None
    init_args = config.get("generator.init_args")
    return generator.image_size_problem(size, vars(init_args) if init_args else {}, IMAGE_SIZE_FLAG)


def _generator_class(config: Namespace) -> type[ConditionalGenerator] | None:
    generator = _class(config.get("generator.class_path"))
    if isinstance(generator, type) and issubclass(generator, ConditionalGenerator):
        return generator
    return None  # the parser reports a class that is not a generator itself


def _class(class_path: str | None) -> type | None:
    if not class_path or "." not in class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None  # the parser reports an unknown class itself


def sample_set_bytes(
    candidates: int,
    survivors: int,
    real_train: int,
    kept_generations: int,
    image_bytes: int,
    num_classes: int,
) -> int:
    """Peak memory of one generation's sample set, as the loop holds it.

    A generation samples its candidates as uint8 batches and concatenates them (two copies, int64
    labels), scores them (MC-dropout probabilities, gathered and concatenated, and per-scorer and
    combined float32 scores), while the datamodule holds the previous training set: the shards of
    ``kept_generations`` generations (as concatenated) and the real training images with them appended.
    Float copies of images exist one batch at a time only.
    """
    sampling = candidates * (2 * image_bytes + 8)
    scoring = candidates * 4 * (2 * num_classes + 2)
    queued = kept_generations * survivors * (image_bytes + 8)
    training = 2 * queued + real_train * (image_bytes + 8)
    return sampling + scoring + training


def memory_limit() -> int:
    """Bytes of memory this process may use: physical RAM, or a smaller cgroup (container, SLURM) limit."""
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            limit = min(limit, int(value))
    return limit


def missing_prerequisites(config: Namespace, data: SelfLoopDataModule | None) -> list[str]:
    """One message per file the run needs and does not have, each saying how to get it: the data set's files
    (read by loading ``data``), the pretrained classifiers' ImageNet weights, the FID Inception weights and the
    Stable Diffusion weights. Nothing is downloaded: a file that is not cached counts as missing where
    downloading is off or its host cannot be reached. (The CLIP weights of the filter are looked for when the
    filter is built.)

    Args:
        config: the parsed ``fit`` config.
        data: the data module (``None``: not checked).
    """
    found: list[str] = []
    if data is not None:
        try:
            _ = data.real
        except (DatasetNotFoundError, CorruptDatasetError) as err:
            found.append(str(err))
    if config.get("model.pretrained"):
        archs = config.get("loop.archs") or [config.get("model.arch")]
        found += [str(err) for arch in archs if arch in PRETRAINED_ARCHS and (err := weights_problem(arch))]
    inception = config.get("loop.fid_extractor") == "inception"
    if inception and (err := inception_weights_problem(config.get("loop.fid_inception_weights"))) is not None:
        found.append(str(err))
    generator = _generator_class(config)
    init = config.get("generator.init_args")
    if generator is not None and (err := generator.missing_weights(vars(init) if init else {})) is not None:
        found.append(err)
    return found


def sample_count_problem(loop: LoopConfig, data: SelfLoopDataModule) -> str | None:
    """A message when ``--loop.samples_per_generation`` keeps fewer than 2 samples per class: the filter
    ranks each class's candidates, and FID and the class fidelity need more than one sample."""
    real_train = len(data.real.train)
    count = loop.samples_count(real_train)
    least = 2 * data.num_classes
    if count >= least:
        return None
    value = loop.samples_per_generation
    meaning = f" (a fraction of the {real_train:,} real training images)" if isinstance(value, float) else ""
    return (
        f"--loop.samples_per_generation {value}{meaning} asks for {count} sample(s) per generation, fewer than "
        f"2 for each of the {data.num_classes} classes; give a count of at least {least} (int) or a fraction of "
        f"at least {math.ceil(least / real_train * 10_000) / 10_000} (float)"
    )


def sample_memory_problem(
    loop: LoopConfig, sample_filter: SampleFilter, data: SelfLoopDataModule, limit: int | None = None
) -> str | None:
    """A message when ``--loop.samples_per_generation`` gives a sample set larger than memory.

    Args:
        loop: the loop config.
        sample_filter: the filter (it decides how many candidates are sampled per survivor).
        data: the datamodule, its real data loaded.
        limit: bytes available (default: ``memory_limit()``).
    """
    real_train = len(data.real.train)
    kept_per_class = math.ceil(loop.samples_count(real_train) / data.num_classes)
    candidates = data.num_classes * sample_filter.candidates_per_class(kept_per_class)
    survivors = data.num_classes * kept_per_class
    image_bytes = data.channels * data.image_size**2
    # The data policy decides how many generations of samples a training set holds (all: accumulate).
    kept = loop.kept_generations() or loop.generations
    estimate = sample_set_bytes(candidates, survivors, real_train, kept, image_bytes, data.num_classes)
    limit = memory_limit() if limit is None else limit
    if estimate <= limit:
        return None
    value = loop.samples_per_generation
    if isinstance(value, float):
        meaning = f" (a fraction of the {real_train:,} real training images"
        meaning += f"; write {int(value)} for a count)" if value.is_integer() and value > 1 else ")"
    else:
        meaning = ""
    return (
        f"--loop.samples_per_generation {value}{meaning} asks for {candidates:,} candidate images of "
        f"{data.channels}x{data.image_size}x{data.image_size} per generation: about {format_bytes(estimate)} "
        f"of memory with {kept} generations of samples in the training set, more than the "
        f"{format_bytes(limit)} available; give a smaller count (int) or fraction (float)"
    )
