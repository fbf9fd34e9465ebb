"""Every error a user can act on is a ``SelfLoopError``, and the command line prints any of them in one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from helpers.cli_errors import one_error_line

import selfloop
from selfloop.core.errors import SelfLoopError

# Not errors: a stop signal and a pause for human review (their own exit statuses).
NOT_USER_ERRORS = {"ReviewPending"}


def _exception_classes() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(selfloop.__path__, "selfloop."):
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == info.name:
                found[name] = cls
    return found


def test_every_error_class_of_the_package_is_a_selfloop_error():
    classes = _exception_classes()
    assert len(classes) >= 16
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, SelfLoopError))
    assert outside == sorted(NOT_USER_ERRORS)


def test_corrupt_cached_weights_file_is_one_error_line(tiny_run_args, hub_dir, tmp_path, capsys, monkeypatch):
    weights = hub_dir / "checkpoints" / "alexnet-owt-7be5be79.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("SELFLOOP_OFFLINE", "1")
    line = one_error_line(
        tiny_run_args(
            tmp_path / "run",
            "--model.arch",
            "alexnet",
            "--model.pretrained",
            "true",
            "--loop.archs",
            "[alexnet]",
        ),
        capsys,
        monkeypatch,
    )
    assert line.startswith(
        f"selfloop: error: could not load the cached ImageNet weights for 'alexnet' from {weights}"
    )
    assert line.endswith(
        f"delete {weights} and re-download it from https://download.pytorch.org/models/alexnet-owt-7be5be79.pth."
    )


def test_manifest_of_the_wrong_shape_is_one_error_line(tiny_run_args, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("[]")
    line = one_error_line(tiny_run_args(run), capsys, monkeypatch)
    assert line == (
        f"selfloop: error: cannot read the run manifest {run / 'manifest.json'} (a JSON list, expected an object); "
        "it was edited or damaged. Restore it, or start a new run in another --loop.run_dir"
    )


def test_missing_data_folder_is_one_error_line(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nowhere"
    line = one_error_line(
        [
            "fit",
            "--config",
            "configs/cifar20.yaml",
            "--data.init_args.root",
            str(missing),
            "--filter.scorers",
            "[{class_path: selfloop.filtering.scorers.UncertaintyScorer}]",
            "--loop.run_dir",
            str(tmp_path / "run"),
        ],
        capsys,
        monkeypatch,
    )
    assert str(missing) in line and "--data.download true" in line
    assert not (tmp_path / "run").exists()
