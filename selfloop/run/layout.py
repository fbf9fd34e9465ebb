"""The layout of one run's directory: every file a run writes has its place here."""

from __future__ import annotations

import re
from pathlib import Path

from selfloop.core.errors import SelfLoopError


class RunDirectoryError(SelfLoopError, RuntimeError):
    """The run directory cannot be created or written."""


class RunDirectory:
    """Paths inside one run directory (``lightning_logs/<name>/version_<k>/`` by default).

    Layout::

        config.yaml                 resolved config of the run
        manifest.json               phases completed, queue contents, seeds, shard hashes
        metrics.csv                 tidy metrics: generation, arch, seed, metric, value
        queue/gen_<n>.pt            queue shards (uint8 images, labels, scores, generation)
        generations/gen_<n>/        generator weights and raw candidates of generation n
        generations/gen_<n>/audit/  every candidate's scores and decision, histogram, borderline samples
        generations/gen_<n>/review/ the human review of the filter's decisions
        classifiers/gen_<n>/<arch>.pt   classifier weights f_n per arch
        classifiers/subgroup_oracle.pt  the (class, subgroup) classifier that reads generated subgroups
        classifiers/judge.pt       the independent judge of class fidelity (never scores the filter)
        fid_table.csv, fid_table.md FID by generation; fid_real_stats.pt: the cached real statistics
        samples/gen_<n>.png         grid of kept samples, a row per class
        summary/                    TensorBoard events: <arch>/<metric> with step = generation
        phases/gen_<n>/<phase>/     TensorBoard events of each training phase

    Args:
        path: the run directory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @staticmethod
    def claim_next_version(root: str | Path, name: str) -> RunDirectory:
        """Create and return the next free ``root/name/version_<k>``.

        The folder is claimed by creating it (``mkdir`` fails for all but one of several processes), so
        two runs started at once under one root take ``version_k`` and ``version_k+1``.

        Raises:
            RunDirectoryError: naming the path when it cannot be created or written.
        """
        parent = Path(root) / name
        version = _highest_version(parent) + 1
        while True:
            run = RunDirectory(parent / f"version_{version}")
            try:
                parent.mkdir(parents=True, exist_ok=True)
                run.path.mkdir()
            except FileExistsError:
                version += 1
                continue
            except OSError as err:
                raise run._unwritable(err) from None
            run.create()
            return run

    def create(self) -> None:
        """Create the directory and prove it is writable.

        Raises:
            RunDirectoryError: naming the path when it cannot be created or written.
        """
        probe = self.path / ".write_probe"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise self._unwritable(err) from None

    def _unwritable(self, err: OSError) -> RunDirectoryError:
        return RunDirectoryError(
            f"cannot write the run directory {self.path} ({err.strerror or err}); "
            "choose a writable place with --loop.run_dir or --loop.root"
        )

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def manifest_file(self) -> Path:
        return self.path / "manifest.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def queue_dir(self) -> Path:
        return self.path / "queue"

    @property
    def summary_dir(self) -> Path:
        return self.path / "summary"

    def generation_dir(self, generation: int) -> Path:
        return self.path / "generations" / f"gen_{generation:03d}"

    def generator_weights(self, generation: int) -> Path:
        return self.generation_dir(generation) / "generator.pt"

    def candidates_file(self, generation: int) -> Path:
        return self.generation_dir(generation) / "candidates.pt"

    def audit_dir(self, generation: int) -> Path:
        return self.generation_dir(generation) / "audit"

    def review_dir(self, generation: int) -> Path:
        return self.generation_dir(generation) / "review"

    @property
    def subgroup_oracle_weights(self) -> Path:
        return self.path / "classifiers" / "subgroup_oracle.pt"

    @property
    def judge_weights(self) -> Path:
        return self.path / "classifiers" / "judge.pt"

    @property
    def fid_real_stats(self) -> Path:
        return self.path / "fid_real_stats.pt"

    @property
    def fid_tables(self) -> tuple[Path, Path]:
        """The FID table as CSV and as Markdown."""
        return self.path / "fid_table.csv", self.path / "fid_table.md"

    def classifier_weights(self, generation: int, arch: str) -> Path:
        return self.path / "classifiers" / f"gen_{generation:03d}" / f"{arch}.pt"

    def sample_grid(self, generation: int) -> Path:
        return self.path / "samples" / f"gen_{generation:03d}.png"

    def phase_log_dir(self) -> Path:
        return self.path / "phases"


def _highest_version(parent: Path) -> int:
    """The highest k of the ``version_<k>`` folders in ``parent`` (-1 when there are none)."""
    versions = [
        int(m.group(1))
        for p in (parent.iterdir() if parent.is_dir() else [])
        if (m := re.fullmatch(r"version_(\d+)", p.name))
    ]
    return max(versions, default=-1)
