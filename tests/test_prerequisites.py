"""Every missing file a run needs (data, weights) is named in one line, before any download or run directory,
and an unreachable hub is found out in one quick try instead of retries with back-off."""

from __future__ import annotations

from helpers.cli_errors import one_error_line

from selfloop.classifiers.pretrained import expected_weights_path
from selfloop.core.offline import download_blocker, host_reachable
from selfloop.metrics.fid import default_inception_weights_path


def test_paper_config_without_data_and_clip_weights_names_both(hub_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "nodata"
    line = one_error_line(
        ["fit", "--config", "configs/colored_mnist_biased.yaml", "--data.init_args.root", str(missing),
         "--loop.run_dir", str(tmp_path / "run")],
        capsys,
        monkeypatch,
    )  # fmt: skip
    assert line.startswith(
        f"selfloop: error: 2 things this run needs are missing: (1) MNIST not found under --data.root {missing}: "
    )
    assert "--data.download true" in line  # how to get the data
    assert (
        "(2) CLIP weights for model_name 'ViT-B-32-quickgelu', pretrained_tag 'openai' are not available"
        in line
    )
    assert (
        "open_clip.create_model('ViT-B-32-quickgelu', pretrained='openai')" in line
    )  # how to get the weights
    assert not (tmp_path / "run").exists()


def test_pretrained_and_inception_weights_are_listed_together(
    tiny_run_args, hub_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("SELFLOOP_OFFLINE", "1")
    args = ["--model.arch", "alexnet", "--model.pretrained", "true", "--loop.archs", "[alexnet]",
            "--loop.fid_extractor", "inception"]  # fmt: skip
    line = one_error_line(tiny_run_args(tmp_path / "run", *args), capsys, monkeypatch)
    alexnet, inception = expected_weights_path("alexnet"), default_inception_weights_path()
    assert line.startswith(
        "selfloop: error: 2 things this run needs are missing: (1) ImageNet weights for 'alexnet' are not "
        "available: the file is not in the torch hub cache, and downloading is off"
    )
    assert (
        f"Expected file: {alexnet}" in line and f"(2) FID Inception weights not found at {inception}." in line
    )
    assert not (tmp_path / "run").exists()


def test_missing_stable_diffusion_weights_are_asked_of_the_generator_and_listed_with_the_rest(
    tiny_run_args, tmp_path, capsys, monkeypatch
):
    # The generator class names its own missing weights (``missing_weights``); the CLI lists them first.
    weights = tmp_path / "sd15"
    args = ["--generator", "selfloop.generators.stable_diffusion.StableDiffusionLoRA",
            "--generator.init_args.pretrained_path", str(weights),
            "--loop.fid_extractor", "inception", "--loop.fid_inception_weights", str(tmp_path / "inception.pth")]  # fmt: skip
    line = one_error_line(tiny_run_args(tmp_path / "run", *args), capsys, monkeypatch)
    assert line.startswith(
        "selfloop: error: 2 things this run needs are missing: (1) FID Inception weights not found"
    )
    assert f"(2) Stable Diffusion weights not found: {weights} does not exist (downloading is off;" in line
    assert not (tmp_path / "run").exists()


def test_an_unresolvable_host_is_unreachable_and_blocks_downloads():
    assert not host_reachable("selfloop-test.invalid")  # .invalid never resolves (RFC 2606)
    assert download_blocker("https://selfloop-test.invalid/w.pth", allowed=True) == (
        "selfloop-test.invalid cannot be reached from this machine (offline?)"
    )
    assert download_blocker("https://selfloop-test.invalid/w.pth", allowed=False).startswith(
        "downloading is off"
    )
