"""The paper configs filter as the paper does; the quick starts need no download.

Appendix C: CLIP score against the class name, 10 bins of each class's score range, keep the top
(1 - r) with r = 10% MNIST, 30% CIFAR, 60% ImageNet; section 3.2 adds the previous generation's
classifier's prediction uncertainty. Every config is parsed by the real CLI (``--print_config``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from selfloop.cli.app import SelfLoopCLI, main
from selfloop.filtering.clip_scorer import UNCERTAINTY_ONLY_FLAG, ClipScorer
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.filtering.scorers import UncertaintyScorer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CLIP = "selfloop.filtering.clip_scorer.ClipScorer"
UNCERTAINTY = "selfloop.filtering.scorers.UncertaintyScorer"

# config -> (r, prompt template, a class name of its data set, the prompt CLIP reads for it)
PAPER = {
    "colored_mnist_unbiased.yaml": (0.1, "a photo of the handwritten digit {name}", "7",
                                    "a photo of the handwritten digit 7"),
    "colored_mnist_biased.yaml": (0.1, "a photo of the handwritten digit {name}", "7",
                                  "a photo of the handwritten digit 7"),
    # CIFAR-100's superclass names are plural, with underscores.
    "cifar20.yaml": (0.3, "a photo of {name}", "aquatic_mammals", "a photo of aquatic mammals"),
    "cifar20_pretrained.yaml": (0.3, "a photo of {name}", "aquatic_mammals", "a photo of aquatic mammals"),
    "hardimagenet.yaml": (0.6, "a photo of a {name}", "dog sled", "a photo of a dog sled"),
    "breeds_living17.yaml": (0.6, "a photo of a {name}", "salamander", "a photo of a salamander"),
}  # fmt: skip


def _parsed(name: str, capsys, *extra: str) -> dict:
    with pytest.raises(SystemExit) as info:
        SelfLoopCLI(args=["fit", "--config", str(CONFIGS / name), *extra, "--print_config"])
    assert info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def _build(entry: dict, **overrides):
    module, _, name = entry["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**{**(entry.get("init_args") or {}), **overrides})


@pytest.mark.parametrize("name", sorted(PAPER), ids=str)
def test_paper_config_filters_with_clip_and_uncertainty_on_the_score_range(capsys, name):
    r, template, class_name, prompt = PAPER[name]
    config = _parsed(name, capsys)
    section = config["filter"]
    assert section["drop_fraction"] == r
    assert section["mode"] == "score_range"
    assert section["combine"] == "range_mean"
    clip, uncertainty = section["scorers"]
    assert (clip["class_path"], uncertainty["class_path"]) == (CLIP, UNCERTAINTY)
    assert clip["init_args"]["prompt_template"] == template
    # OpenAI's CLIP through open_clip's own tag and cache, in the architecture it was trained with.
    assert clip["init_args"]["model_name"] == "ViT-B-32-quickgelu"
    assert (clip["init_args"]["pretrained_tag"], clip["init_args"]["checkpoint"]) == ("openai", None)
    assert uncertainty["init_args"]["mc_passes"] >= 1

    # Built as configured (only the weights are left unchecked): the text CLIP reads per class.
    scorer = _build(clip)
    assert isinstance(scorer, ClipScorer) and scorer.prompts([class_name]) == [prompt]
    assert isinstance(_build(uncertainty), UncertaintyScorer)


@pytest.mark.parametrize("name", sorted(PAPER), ids=str)
def test_the_documented_flag_switches_to_the_uncertainty_scorer_alone(capsys, name):
    assert UNCERTAINTY_ONLY_FLAG in (CONFIGS / name).read_text()  # the config's comment names it
    flag, value = UNCERTAINTY_ONLY_FLAG.split(" ", 1)
    section = _parsed(name, capsys, flag, value.strip("'"))["filter"]
    assert [entry["class_path"] for entry in section["scorers"]] == [UNCERTAINTY]
    assert (section["mode"], section["drop_fraction"]) == ("score_range", PAPER[name][0])


@pytest.mark.parametrize("name", ["digits.yaml", "quickstart.yaml", "study_mnist.yaml"])
def test_quick_starts_filter_by_uncertainty_alone_and_need_no_download(capsys, name):
    section = _parsed(name, capsys)["filter"]
    assert section["scorers"] is None  # SampleFilter's default: the previous classifier's uncertainty
    built = SampleFilter(section["drop_fraction"], None, section["mode"], section["combine"])
    assert [type(s) for s in built.scorers] == [UncertaintyScorer]


def test_hard_imagenet_runs_the_papers_4_generations(capsys):
    # Section 4.1 and Table 1: 4 Hard ImageNet generations (4 FID values).
    assert _parsed("hardimagenet.yaml", capsys)["loop"]["generations"] == 4


def test_offline_without_clip_weights_a_paper_run_stops_first_in_one_line(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    run = tmp_path / "run"
    # No MNIST under the data root either: both are named in the one line, the data first.
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(CONFIGS / "colored_mnist_unbiased.yaml"),
              "--data.init_args.root", str(tmp_path / "data"), "--loop.run_dir", str(run)])  # fmt: skip
    assert info.value.code == 2
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith(
        f"selfloop: error: 2 things this run needs are missing: (1) MNIST not found under --data.root {tmp_path / 'data'}"
    )
    assert "(2) CLIP weights for model_name 'ViT-B-32-quickgelu', pretrained_tag 'openai'" in first
    assert UNCERTAINTY_ONLY_FLAG in first
    assert rest == ["(set SELFLOOP_DEBUG=1 to see the traceback)"]
    assert not run.exists()
