"""ClipScorer on a tiny, randomly initialised open_clip model loaded from a local checkpoint file.

The model is built from a custom config (a 2-layer ViT of width 32 on 32 px images, a 2-layer text
transformer with open_clip's standard 49408-token vocabulary and 77-token context, which its bundled
BPE tokenizer needs), saved with ``torch.save`` and loaded back by ``ClipScorer`` through the same
``checkpoint=`` path a user takes. Nothing is downloaded.
"""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
import torch.nn.functional as F
from helpers.rounding import written_rounding as _rounding

from selfloop.core.errors import MissingWeightsError
from selfloop.filtering.clip_scorer import UNCERTAINTY_ONLY_FLAG, ClipScorer, MissingClipWeightsError
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.filtering.scorers import ScoringContext, UncertaintyScorer

TINY = "selfloop-test-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
CLASSES = ["zero", "one", "two"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    config = folder / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY)
    path = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return path, model.eval()


FLOAT32_EPS = 2.0**-24
"""Relative rounding of one float32 operation: the filter keeps positions and combined scores in float32."""


def manual_scores(model, images, labels, prompts):
    """The CLIP score by hand: resize (bicubic, antialiased) to 32 px, gray -> RGB, normalise, cosine."""
    x = images.float() / 255
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    x = F.interpolate(x, size=(32, 32), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    tokens = open_clip.get_tokenizer(TINY)(prompts)
    with torch.no_grad():
        image = F.normalize(model.encode_image((x - mean) / std), dim=-1)
        text = F.normalize(model.encode_text(tokens), dim=-1)
    return (image * text[labels]).sum(1)


@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (6, 3, 64, 64)])
def test_scores_match_a_manual_cosine_and_are_deterministic(tiny_checkpoint, shape):
    path, model = tiny_checkpoint
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    scorer = ClipScorer(model_name=TINY, checkpoint=str(path), batch_size=4)  # 2 batches
    context = ScoringContext(CLASSES)

    scores = scorer.score(images, labels, context)
    assert scores.shape == (6,) and scores.dtype == torch.float32
    prompts = [f"a photo of a {name}" for name in CLASSES]  # the default template
    assert torch.allclose(scores, manual_scores(model, images, labels, prompts), atol=1e-5)
    assert torch.equal(scores, scorer.score(images, labels, context))
    assert scores.abs().max() <= 1 + 1e-6  # cosine similarities


def test_model_loads_lazily_and_text_features_are_cached(tiny_checkpoint):
    path, _ = tiny_checkpoint
    scorer = ClipScorer(model_name=TINY, checkpoint=str(path))
    assert scorer._model is None  # constructing from a config costs nothing
    text = scorer.text_features(CLASSES)
    assert text.shape == (3, 16)
    assert torch.equal(scorer.text_features(CLASSES), text)
    assert len(scorer._text_cache) == 1
    assert torch.allclose(text.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize(
    ("template", "names", "expected"),
    [
        # The paper configs' templates, with the class names their data sets give.
        (
            "a photo of the handwritten digit {name}",
            ["0", "7"],
            ["a photo of the handwritten digit 0", "a photo of the handwritten digit 7"],
        ),
        (
            "a photo of {name}",
            ["aquatic_mammals", "vehicles_1"],
            ["a photo of aquatic mammals", "a photo of vehicles 1"],
        ),
        (
            "a photo of a {name}",
            ["dog sled", "salamander"],
            ["a photo of a dog sled", "a photo of a salamander"],
        ),
    ],
)
def test_scores_go_through_the_configured_prompt(tiny_checkpoint, template, names, expected):
    path, model = tiny_checkpoint
    scorer = ClipScorer(model_name=TINY, checkpoint=str(path), prompt_template=template)
    assert scorer.prompts(names) == expected
    images = torch.randint(
        0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    labels = torch.tensor([0, 1, 1, 0])
    scores = scorer.score(images, labels, ScoringContext(names))
    names_only = manual_scores(model, images, labels, list(names))  # the bare class name as the text
    assert torch.allclose(scores, manual_scores(model, images, labels, expected), atol=1e-5)
    assert not torch.allclose(scores, names_only, atol=1e-3)  # the template changes the text embedding


def _assert_one_actionable_line(error: BaseException, *named: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert UNCERTAINTY_ONLY_FLAG in message  # how to run without CLIP
    for text in named:
        assert text in message
    assert isinstance(error, MissingWeightsError) and isinstance(error, FileNotFoundError)  # cli.USER_ERRORS


def test_missing_checkpoint_names_the_path_how_to_get_it_and_the_uncertainty_flag(tmp_path):
    missing = tmp_path / "nowhere" / "clip.pt"
    with pytest.raises(MissingClipWeightsError) as info:
        ClipScorer(model_name="ViT-B-32-quickgelu", checkpoint=str(missing)).preflight()
    _assert_one_actionable_line(info.value, str(missing), "create_model", "torch.save")
    assert info.value.path == missing


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache with the hub unreachable: HF_HUB_OFFLINE=1 (no request is made)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_uncached_tag_offline_names_the_tag_the_hub_file_and_the_uncertainty_flag(offline_hub):
    scorer = ClipScorer(model_name="ViT-B-32-quickgelu", pretrained_tag="openai")  # building is free
    with pytest.raises(MissingClipWeightsError) as info:
        scorer.preflight()
    _assert_one_actionable_line(
        info.value,
        "'ViT-B-32-quickgelu'",
        "pretrained_tag 'openai'",
        "https://huggingface.co/timm/vit_base_patch32_clip_224.openai",
        "HF_HUB_OFFLINE",
    )
    assert info.value.url == "https://huggingface.co/timm/vit_base_patch32_clip_224.openai"


def test_the_filter_checks_the_weights_when_it_is_built(offline_hub, tmp_path):
    # The CLI builds the filter from the config before the run starts: that is where a run stops.
    with pytest.raises(MissingClipWeightsError):
        SampleFilter(0.1, [ClipScorer(pretrained_tag="openai"), UncertaintyScorer()], mode="score_range")
    with pytest.raises(MissingClipWeightsError):
        SampleFilter(0.1, [ClipScorer(checkpoint=str(tmp_path / "absent.pt"))])


def test_a_cached_tag_is_found_without_any_network(offline_hub, tiny_checkpoint, monkeypatch):
    # A tag's weights in the Hugging Face cache layout (as open_clip's download leaves them) are used
    # offline. The tiny model stands in for the tag's weights via a registered pretrained config.
    from huggingface_hub.file_download import repo_folder_name

    path, model = tiny_checkpoint
    repo = "selfloop/tiny-clip"
    snapshot = offline_hub / repo_folder_name(repo_id=repo, repo_type="model") / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(path.read_bytes())
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY, {"tiny": {"hf_hub": f"{repo}/"}})

    scorer = ClipScorer(model_name=TINY, pretrained_tag="tiny")
    scorer.preflight()
    assert scorer.weights_file == snapshot / "open_clip_pytorch_model.bin"
    images = torch.randint(
        0, 256, (3, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    labels = torch.tensor([2, 0, 1])
    expected = manual_scores(model, images, labels, [f"a photo of a {n}" for n in CLASSES])
    assert torch.allclose(scorer.score(images, labels, ScoringContext(CLASSES)), expected, atol=1e-5)


def test_exactly_one_weight_source_a_known_tag_and_a_matching_activation(tiny_checkpoint):
    path, _ = tiny_checkpoint
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        ClipScorer(model_name=TINY)
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        ClipScorer(model_name=TINY, checkpoint=str(path), pretrained_tag="openai")
    with pytest.raises(ValueError, match="must contain '{name}'"):
        ClipScorer(model_name=TINY, checkpoint=str(path), prompt_template="a photo")
    # A tag open_clip does not know fails before any download is attempted.
    with pytest.raises(ValueError, match="no pretrained tag 'laion2b_s34b_b79k'"):
        ClipScorer(model_name=TINY, pretrained_tag="laion2b_s34b_b79k").preflight()
    # OpenAI's weights were trained with QuickGELU: the plain architecture would degrade them silently.
    with pytest.raises(ValueError, match="use model_name 'ViT-B-32-quickgelu'"):
        ClipScorer(model_name="ViT-B-32", pretrained_tag="openai").preflight()


@pytest.mark.slow
def test_a_run_filters_with_clip_and_uncertainty_on_the_score_range(
    tiny_checkpoint, tiny_run_args, tmp_path, monkeypatch
):
    # The paper configs' filter (CLIP + f_{n-1}'s uncertainty, range_mean, score_range) through the real
    # CLI and GenerationController, on the embedded digits with the tiny CLIP as a local checkpoint.
    import csv
    from pathlib import Path

    from selfloop.cli.app import SelfLoopCLI
    from selfloop.run.layout import RunDirectory

    path, _ = tiny_checkpoint
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    scorers = (
        f"[{{class_path: selfloop.filtering.clip_scorer.ClipScorer, init_args: {{model_name: {TINY}, "
        f"checkpoint: '{path}', prompt_template: 'a photo of the handwritten digit {{name}}'}}}}, "
        "{class_path: selfloop.filtering.scorers.UncertaintyScorer, init_args: {mc_passes: 2}}]"
    )
    run = tmp_path / "run"
    SelfLoopCLI(
        args=tiny_run_args(run, "--loop.generations", "1", "--filter.scorers", scorers,
                           "--filter.mode", "score_range", "--filter.combine", "range_mean",
                           "--filter.drop_fraction", "0.3")
    )  # fmt: skip
    with open(RunDirectory(run).audit_dir(1) / "candidates.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40  # score_range generates no extra candidates
    for row in rows:
        clip, uncertainty = float(row["clip"]), float(row["uncertainty"])
        assert -1 <= clip <= 1 and 0 <= uncertainty <= 1
        # Kept exactly when the combined score lies in the top 70% of its class's range; a score that the
        # file's rounding leaves on either side of the threshold cannot tell.
        combined, threshold = float(row["combined"]), float(row["threshold"])
        if abs(combined - threshold) > _rounding(row["combined"]) + _rounding(row["threshold"]):
            assert (combined >= threshold) == (row["kept"] == "1")
    for label in {row["label"] for row in rows}:
        members = [row for row in rows if row["label"] == label]
        combined = [float(row["combined"]) for row in members]
        # range_mean: both scorers' positions in the class's range, averaged; the rule drops the bottom 30%.
        # Recomputed from the file's rounded scores, so compared within what that rounding allows.
        expected = torch.zeros(len(members), dtype=torch.float64)
        tolerance = torch.tensor([_rounding(row["combined"]) + 3 * FLOAT32_EPS for row in members])
        for name in ("clip", "uncertainty"):
            raw = torch.tensor([float(row[name]) for row in members], dtype=torch.float64)
            error = torch.tensor([_rounding(row[name]) for row in members], dtype=torch.float64)
            low, high = raw.argmin(), raw.argmax()
            span, span_error = raw[high] - raw[low], error[high] + error[low]
            expected += ((raw - raw[low]) / span if span > 0 else torch.ones_like(raw)) / 2
            if span > span_error:
                position = (raw - raw[low]).abs() / span
                tolerance += ((error + error[low]) + position * span_error) / (span - span_error) / 2
            else:
                tolerance += 0.5  # the rounded scores cannot place the candidates in a range that narrow
        assert ((torch.tensor(combined, dtype=torch.float64) - expected).abs() <= tolerance).all()
        bound = 2 * max(_rounding(row["combined"]) for row in members) + _rounding(members[0]["threshold"])
        assert float(members[0]["threshold"]) == pytest.approx(
            min(combined) + 0.3 * (max(combined) - min(combined)), abs=bound
        )
