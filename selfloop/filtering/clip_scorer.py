"""CLIP score: how well a generated image matches a text prompt naming its intended class.

The paper (appendix C) scores every generated image by the CLIP similarity between the image and
its class name. ``ClipScorer`` computes the cosine similarity between open_clip's normalised image
embedding and the normalised text embedding of a per-class prompt.

No weights are downloaded unless the user asks for an open_clip pretrained tag: the usual, offline
way is a local checkpoint file. To make one, on a machine with internet::

    import open_clip, torch
    model, _, _ = open_clip.create_model_and_transforms("ViT-B-32", pretrained="laion2b_s34b_b79k")
    torch.save(model.state_dict(), "clip-vit-b-32.pt")

(or download ``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors`` from the model's
Hugging Face hub repository, e.g. ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K``), then pass
``checkpoint="clip-vit-b-32.pt"``. OpenAI's weights use QuickGELU: load them with
``model_name="ViT-B-32-quickgelu"``, or the text and image embeddings silently degrade.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfloop.filtering.scorers import Scorer, ScoringContext

_HOW_TO_GET_A_CHECKPOINT = (
    "on a machine with internet run `model, _, _ = open_clip.create_model_and_transforms('{model}', "
    "pretrained='<tag>')` (tags: open_clip.list_pretrained_tags_by_model('{model}'), e.g. "
    "'laion2b_s34b_b79k' for ViT-B-32) and `torch.save(model.state_dict(), '<file>')`, or download "
    "open_clip_pytorch_model.bin from the model's Hugging Face hub repository; copy the file here and pass "
    "its path as the ClipScorer's checkpoint (init_args.checkpoint of the clip entry in --filter.scorers)"
)


class MissingClipCheckpointError(FileNotFoundError):
    """The local CLIP checkpoint file does not exist."""


class ClipDownloadError(RuntimeError):
    """Weights for an open_clip pretrained tag could not be downloaded (usually: no internet)."""


class ClipScorer(Scorer):
    """Cosine similarity between a sample's CLIP image embedding and its class prompt's text embedding.

    The model is loaded on the first ``score`` call (building the filter from a config stays cheap)
    and kept; text embeddings are computed once per list of class names. Images of any size and 1 or
    3 channels are preprocessed with batched tensor ops, following the model's preprocessing config
    (``model.visual.preprocess_cfg``): scale the shorter side to the model's image size with
    antialiased bicubic interpolation (``resize_mode="squash"`` resizes both sides instead), crop the
    centre, repeat grayscale to 3 channels, normalise with the model's mean and std.

    Args:
        model_name: an open_clip architecture (``open_clip.list_models()``), or one registered with
            ``open_clip.add_model_config``.
        checkpoint: a local weights file for ``model_name`` (a ``state_dict`` saved with
            ``torch.save``, an open_clip ``.bin``/``.safetensors`` file); works offline. Exactly one of
            ``checkpoint`` and ``pretrained_tag`` must be given.
        pretrained_tag: an open_clip pretrained tag (e.g. ``"laion2b_s34b_b79k"``), downloaded on
            first use: needs internet, or a warm open_clip / Hugging Face cache.
        prompt_template: the text per class, formatted with ``name=<class name>``.
        batch_size: images per forward pass.
    """

    name = "clip"

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        checkpoint: str | None = None,
        pretrained_tag: str | None = None,
        prompt_template: str = "a photo of the digit {name}",
        batch_size: int = 256,
    ) -> None:
        if (checkpoint is None) == (pretrained_tag is None):
            raise ValueError(
                "ClipScorer needs exactly one of checkpoint (a local weights file, works offline) and "
                f"pretrained_tag (an open_clip tag, downloads); got checkpoint={checkpoint!r}, "
                f"pretrained_tag={pretrained_tag!r}"
            )
        try:
            prompt_template.format(name="x")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"prompt_template {prompt_template!r} must contain '{{name}}' and no other fields "
                f"(formatting failed: {error!r})"
            ) from error
        if "{name}" not in prompt_template:
            raise ValueError(f"prompt_template {prompt_template!r} must contain '{{name}}' (the class name)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = model_name
        self.checkpoint = checkpoint
        self.pretrained_tag = pretrained_tag
        self.prompt_template = prompt_template
        self.batch_size = batch_size
        if checkpoint is not None:
            # Fail at configuration time, not after hours of generator training.
            _check_checkpoint(Path(checkpoint), model_name)
        self._model: nn.Module | None = None
        self._tokenizer = None
        self._text_cache: dict[tuple[str, ...], Tensor] = {}

    # ------------------------------------------------------------------------------------ loading

    def load_model(self) -> nn.Module:
        """The CLIP model in eval mode, loaded on first use and cached."""
        if self._model is not None:
            return self._model
        import open_clip

        if self.model_name not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip model_name {self.model_name!r}; choose one of open_clip.list_models() "
                "(e.g. 'ViT-B-32', 'ViT-B-32-quickgelu', 'ViT-L-14') or register a config with "
                "open_clip.add_model_config"
            )
        if self.checkpoint is not None:
            path = Path(self.checkpoint)
            _check_checkpoint(path, self.model_name)
            try:
                model, _, _ = open_clip.create_model_and_transforms(
                    self.model_name, pretrained=str(path), require_pretrained=True
                )
            except RuntimeError as error:
                raise RuntimeError(
                    f"CLIP checkpoint {path} could not be loaded into model_name={self.model_name!r} "
                    f"(is it a checkpoint of that architecture?): {error}"
                ) from error
        else:
            tags = open_clip.list_pretrained_tags_by_model(self.model_name)
            if self.pretrained_tag not in tags:
                raise ValueError(
                    f"open_clip has no pretrained tag {self.pretrained_tag!r} for {self.model_name!r}; "
                    f"known tags: {', '.join(tags) or 'none'}"
                )
            try:
                model, _, _ = open_clip.create_model_and_transforms(
                    self.model_name, pretrained=self.pretrained_tag, require_pretrained=True
                )
            except (RuntimeError, OSError) as error:
                raise ClipDownloadError(
                    f"could not get open_clip weights {self.model_name!r} / {self.pretrained_tag!r} "
                    f"(no internet?): {error}. Offline, use a local checkpoint instead: "
                    + _HOW_TO_GET_A_CHECKPOINT.format(model=self.model_name)
                ) from error
        model.eval().requires_grad_(False)
        self._model = model
        self._tokenizer = open_clip.get_tokenizer(self.model_name)
        return model

    # ------------------------------------------------------------------------------------ scoring

    @torch.no_grad()
    def text_features(self, class_names: list[str], device: torch.device | str = "cpu") -> Tensor:
        """Normalised text embeddings ``(num_classes, D)`` of the class prompts, cached per class list."""
        key = tuple(class_names)
        if key not in self._text_cache:
            model = self.load_model()
            model_device = next(model.parameters()).device
            prompts = [self.prompt_template.format(name=name) for name in class_names]
            tokens = self._tokenizer(prompts).to(model_device)
            self._text_cache[key] = F.normalize(model.encode_text(tokens).float(), dim=-1).cpu()
        return self._text_cache[key].to(device)

    @torch.no_grad()
    def image_features(self, images: Tensor, device: torch.device | str = "cpu") -> Tensor:
        """Normalised image embeddings ``(N, D)`` of uint8 ``(N, C, H, W)`` images, on the CPU."""
        model = self.load_model().to(device)
        out = [
            F.normalize(model.encode_image(self.preprocess(chunk.to(device))).float(), dim=-1).cpu()
            for chunk in images.split(self.batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, 0)

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 ``(N, 1|3, H, W)`` -> normalised float ``(N, 3, S, S)`` at the model's image size."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"ClipScorer expects uint8 (N, 1 or 3, H, W) images, got {images.dtype} {tuple(images.shape)}"
            )
        visual = self.load_model().visual
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        size = _pair(cfg.get("size") or visual.image_size)
        mode = "bilinear" if cfg.get("interpolation") == "bilinear" else "bicubic"
        x = images.float().div_(255)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        if cfg.get("resize_mode") == "squash":
            x = F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False)
        else:
            # open_clip's default: scale the shorter side to the target, then centre-crop.
            scale = max(size[0] / h, size[1] / w)
            scaled = (max(size[0], round(h * scale)), max(size[1], round(w * scale)))
            if scaled != (h, w):
                x = F.interpolate(x, size=scaled, mode=mode, antialias=True, align_corners=False)
            top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
            x = x[..., top : top + size[0], left : left + size[1]]
        # Bicubic overshoots; PIL would clamp to [0, 255] when producing its uint8 image.
        x = x.clamp_(0, 1)
        mean = torch.as_tensor(cfg.get("mean") or _openai_mean(), dtype=x.dtype, device=x.device).view(
            1, -1, 1, 1
        )
        std = torch.as_tensor(cfg.get("std") or _openai_std(), dtype=x.dtype, device=x.device).view(
            1, -1, 1, 1
        )
        return (x - mean) / std

    def score(self, images: Tensor, labels: Tensor, context: ScoringContext) -> Tensor:
        labels = labels.long().cpu()
        if len(labels) and (labels.min() < 0 or labels.max() >= len(context.class_names)):
            raise ValueError(
                f"labels must lie in [0, {len(context.class_names)}) (one class name each), "
                f"got labels in [{int(labels.min())}, {int(labels.max())}]"
            )
        if len(labels) == 0:
            return torch.empty(0)
        text = self.text_features(context.class_names)
        image = self.image_features(images, context.device)
        return (image * text[labels]).sum(1)


def _check_checkpoint(path: Path, model_name: str) -> None:
    if not path.is_file():
        raise MissingClipCheckpointError(
            f"CLIP checkpoint not found: {path.resolve()}. To get one, "
            + _HOW_TO_GET_A_CHECKPOINT.format(model=model_name)
        )


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _openai_mean() -> tuple[float, ...]:
    from open_clip import OPENAI_DATASET_MEAN

    return OPENAI_DATASET_MEAN


def _openai_std() -> tuple[float, ...]:
    from open_clip import OPENAI_DATASET_STD

    return OPENAI_DATASET_STD
