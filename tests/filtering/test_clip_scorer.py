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

from selfloop.filtering.clip_scorer import ClipScorer, MissingClipCheckpointError
from selfloop.filtering.scorers import ScoringContext

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


def manual_scores(model, images, labels, template="a photo of the digit {name}"):
    """The CLIP score by hand: resize (bicubic, antialiased) to 32 px, gray -> RGB, normalise, cosine."""
    x = images.float() / 255
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    x = F.interpolate(x, size=(32, 32), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    tokens = open_clip.get_tokenizer(TINY)([template.format(name=n) for n in CLASSES])
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
    assert torch.allclose(scores, manual_scores(model, images, labels), atol=1e-5)
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


def test_missing_checkpoint_names_the_path_and_how_to_get_it(tmp_path):
    missing = tmp_path / "nowhere" / "clip.pt"
    with pytest.raises(MissingClipCheckpointError) as info:
        ClipScorer(model_name="ViT-B-32", checkpoint=str(missing))
    message = str(info.value)
    assert str(missing) in message
    assert "create_model_and_transforms" in message and "torch.save" in message
    assert isinstance(info.value, FileNotFoundError)


def test_exactly_one_weight_source_and_a_known_tag(tiny_checkpoint):
    path, _ = tiny_checkpoint
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        ClipScorer(model_name=TINY)
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        ClipScorer(model_name=TINY, checkpoint=str(path), pretrained_tag="openai")
    with pytest.raises(ValueError, match="must contain '{name}'"):
        ClipScorer(model_name=TINY, checkpoint=str(path), prompt_template="a photo")
    # A tag open_clip does not know fails before any download is attempted.
    scorer = ClipScorer(model_name=TINY, pretrained_tag="laion2b_s34b_b79k")
    with pytest.raises(ValueError, match="no pretrained tag 'laion2b_s34b_b79k'"):
        scorer.score(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), torch.tensor([0]), ScoringContext(CLASSES))
