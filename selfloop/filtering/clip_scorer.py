"""CLIP score: how well a generated image matches a text prompt naming its intended class.

The paper (appendix C) scores every generated image by the CLIP similarity between the image and
its class name. ``ClipScorer`` computes the cosine similarity between open_clip's normalised image
embedding and the normalised text embedding of a per-class prompt (``prompt_template`` formatted
with the class name, underscores read as spaces: CIFAR-100's ``aquatic_mammals``).

Weights come one of two ways, and are checked by ``preflight``, which ``SampleFilter`` calls when the
CLI builds the filter from the config, before any images are loaded or any model trained:

* ``pretrained_tag``: one of open_clip's pretrained tags for ``model_name``
  (``open_clip.list_pretrained_tags_by_model``), through open_clip's own download and cache (the
  Hugging Face hub cache for hub-hosted weights, ``~/.cache/clip`` for URL-hosted ones, or
  ``cache_dir``). Downloaded on first use; offline (``HF_HUB_OFFLINE=1`` or ``SELFLOOP_OFFLINE=1``)
  only the cache is looked at.
* ``checkpoint``: a local weights file for ``model_name``, e.g. made on a machine with internet by::

      import open_clip, torch
      model = open_clip.create_model("ViT-B-32-quickgelu", pretrained="openai")
      torch.save(model.state_dict(), "clip-vit-b-32-openai.pt")

  (or ``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors`` downloaded from the tag's
  Hugging Face hub repository).

Weights that cannot be had raise :class:`MissingClipWeightsError`, one line naming the tag or file,
where to get it, and the flag that filters with the previous classifier's uncertainty alone. OpenAI's
weights use QuickGELU: load them with a ``-quickgelu`` model name (``ViT-B-32-quickgelu``); a tag
whose activation does not match ``model_name`` is refused rather than silently degraded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfloop.core.errors import MissingWeightsError
from selfloop.core.offline import download_blocker, downloads_allowed_by_env
from selfloop.filtering.scorers import Scorer, ScoringContext

UNCERTAINTY_ONLY_FLAG = "--filter.scorers '[{class_path: selfloop.filtering.scorers.UncertaintyScorer}]'"
"""The command-line flag that replaces the configured scorers by the previous classifier's uncertainty."""

# open_clip's default file name in a hub repository, and the safetensors file it prefers when present.
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


class MissingClipWeightsError(MissingWeightsError):
    """CLIP weights are neither in the cache nor downloadable, or the local checkpoint does not exist."""


class ClipScorer(Scorer):
    """Cosine similarity between a sample's CLIP image embedding and its class prompt's text embedding.

    The weights file is found (or downloaded) by ``preflight``, which ``SampleFilter`` calls when it is
    built; the model is loaded into memory on the first ``score`` call and kept; text embeddings are
    computed once per list of class names. Images of any size and 1 or 3 channels are preprocessed
    with batched tensor ops, following the model's preprocessing config
    (``model.visual.preprocess_cfg``): scale the shorter side to the model's image size with
    antialiased bicubic interpolation (``resize_mode="squash"`` resizes both sides instead), crop the
    centre, repeat grayscale to 3 channels, normalise with the model's mean and std.

    Args:
        model_name: an open_clip architecture (``open_clip.list_models()``), or one registered with
            ``open_clip.add_model_config``.
        checkpoint: a local weights file for ``model_name`` (a ``state_dict`` saved with
            ``torch.save``, an open_clip ``.bin``/``.safetensors`` file); works offline. Exactly one of
            ``checkpoint`` and ``pretrained_tag`` must be given.
        pretrained_tag: an open_clip pretrained tag of ``model_name`` (e.g. ``"openai"`` for
            ``ViT-B-32-quickgelu``), taken from open_clip's cache or downloaded when the scorer is built.
        prompt_template: the text per class, formatted with ``name=<class name>`` (underscores in
            the name become spaces), e.g. ``"a photo of the handwritten digit {name}"``.
        batch_size: images per forward pass.
        cache_dir: open_clip's download cache (default: the Hugging Face hub cache, ``$HF_HOME/hub``,
            for hub-hosted weights; ``~/.cache/clip`` for URL-hosted ones).
        allow_download: whether weights missing from the cache may be downloaded; ``None`` means yes
            unless ``SELFLOOP_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1.

    Raises:
        ValueError: no or two weight sources, a prompt template without ``{name}``, a batch size < 1.
    """

    name = "clip"

    def __init__(
        self,
        model_name: str = "ViT-B-32-quickgelu",
        checkpoint: str | None = None,
        pretrained_tag: str | None = None,
        prompt_template: str = "a photo of a {name}",
        batch_size: int = 256,
        cache_dir: str | None = None,
        allow_download: bool | None = None,
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
        self.cache_dir = cache_dir
        self.allow_download = downloads_allowed_by_env() if allow_download is None else allow_download
        self._weights_file: Path | None = None
        self._model: nn.Module | None = None
        self._tokenizer = None
        self._text_cache: dict[tuple[str, ...], Tensor] = {}

    # ------------------------------------------------------------------------------------ loading

    def preflight(self) -> None:
        """Find the weights file now (downloading it if needed and allowed); ``SampleFilter`` calls this
        when it is built, so that missing weights stop a run before any images are loaded or models trained.

        Raises:
            MissingClipWeightsError: see the class doc.
            ValueError: an unknown model name or tag, or a tag whose activation differs from the model's.
        """
        _ = self.weights_file

    @property
    def weights_file(self) -> Path:
        """The local weights file: the checkpoint, or the tag's file in open_clip's cache."""
        if self._weights_file is None:
            self._weights_file = self._find_weights()
        return self._weights_file

    def _find_weights(self) -> Path:
        """The checkpoint, or the tag's file from the cache (downloaded if allowed)."""
        import open_clip

        if self.model_name not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip model_name {self.model_name!r}; choose one of open_clip.list_models() "
                "(e.g. 'ViT-B-32-quickgelu', 'ViT-B-32', 'ViT-L-14') or register a config with "
                "open_clip.add_model_config"
            )
        if self.checkpoint is not None:
            path = Path(self.checkpoint)
            if not path.is_file():
                raise MissingClipWeightsError(
                    f"CLIP checkpoint not found: {path.resolve()}. To get one, on a machine with internet run "
                    f"`torch.save(open_clip.create_model('{self.model_name}', pretrained='<tag>').state_dict(), "
                    f"'{path.name}')` (tags: open_clip.list_pretrained_tags_by_model('{self.model_name}')) and "
                    f"copy the file there; or filter without CLIP: {UNCERTAINTY_ONLY_FLAG}",
                    path=path,
                )
            return path
        tag = self.pretrained_tag
        tags = open_clip.list_pretrained_tags_by_model(self.model_name)
        if tag not in tags:
            raise ValueError(
                f"open_clip has no pretrained tag {tag!r} for {self.model_name!r}; "
                f"known tags: {', '.join(tags) or 'none'}"
            )
        cfg = open_clip.get_pretrained_cfg(self.model_name, tag)
        model_quick_gelu = bool(open_clip.get_model_config(self.model_name).get("quick_gelu", False))
        if bool(cfg.get("quick_gelu", False)) != model_quick_gelu:
            hint = (
                f"{self.model_name}-quickgelu"
                if cfg.get("quick_gelu")
                else self.model_name.removesuffix("-quickgelu")
            )
            raise ValueError(
                f"open_clip tag {tag!r} was trained with quick_gelu={bool(cfg.get('quick_gelu'))} but model_name "
                f"{self.model_name!r} has quick_gelu={model_quick_gelu}: use model_name {hint!r}"
            )
        cached = _cached_file(cfg, self.cache_dir)
        if cached is not None:
            return cached  # no network at all once the weights are cached
        source, url = _weights_source(cfg)
        blocked = download_blocker(url, self.allow_download)
        if blocked is not None:
            raise self._missing(source, url, f"not in the cache, and {blocked}")
        from open_clip.pretrained import download_pretrained

        try:
            found = download_pretrained(cfg, cache_dir=self.cache_dir)
        except Exception as error:  # open_clip and huggingface_hub raise many kinds (OSError, HTTP, ...)
            raise self._missing(
                source, url, f"downloading failed ({type(error).__name__}: {_one_line(error)})"
            ) from error
        if not found or not Path(found).is_file():
            raise self._missing(source, url, "open_clip found no weights file for it")
        return Path(found)

    def _missing(self, source: str, url: str, reason: str) -> MissingClipWeightsError:
        cache = self.cache_dir or "open_clip's cache (Hugging Face's $HF_HOME/hub, or ~/.cache/clip)"
        return MissingClipWeightsError(
            f"CLIP weights for model_name {self.model_name!r}, pretrained_tag {self.pretrained_tag!r} are not "
            f'available: {reason}. On a machine with internet, `python -c "import open_clip; '
            f"open_clip.create_model('{self.model_name}', pretrained='{self.pretrained_tag}')\"` downloads "
            f"them ({source}) into {cache}: copy that cache here, or save the model's state_dict and pass the "
            f"file as init_args.checkpoint of the ClipScorer in --filter.scorers; or filter without CLIP: "
            f"{UNCERTAINTY_ONLY_FLAG}",
            url=url,
        )

    def load_model(self) -> nn.Module:
        """The CLIP model in eval mode, loaded from ``weights_file`` on first use and cached."""
        if self._model is not None:
            return self._model
        import open_clip

        overlay: dict[str, Any] = {}
        if self.pretrained_tag is not None:
            # The tag's preprocessing (mean, std, resize) as open_clip would apply it when loading by tag.
            cfg = open_clip.get_pretrained_cfg(self.model_name, self.pretrained_tag)
            overlay = {k: cfg[k] for k in _PREPROCESS_KEYS if cfg.get(k) is not None}
        try:
            model = open_clip.create_model(
                self.model_name,
                pretrained=str(self.weights_file),
                require_pretrained=True,
                force_preprocess_cfg=overlay,
            )
        except RuntimeError as error:
            raise RuntimeError(
                f"CLIP weights {self.weights_file} could not be loaded into model_name={self.model_name!r} "
                f"(is it a checkpoint of that architecture?): {error}"
            ) from error
        model.eval().requires_grad_(False)
        self._model = model
        self._tokenizer = open_clip.get_tokenizer(self.model_name)
        return model

    # ------------------------------------------------------------------------------------ scoring

    def prompts(self, class_names: list[str]) -> list[str]:
        """The text per class: ``prompt_template`` with the class name, underscores read as spaces."""
        return [self.prompt_template.format(name=name.replace("_", " ")) for name in class_names]

    @torch.no_grad()
    def text_features(self, class_names: list[str], device: torch.device | str = "cpu") -> Tensor:
        """Normalised text embeddings ``(num_classes, D)`` of the class prompts, cached per class list."""
        key = tuple(class_names)
        if key not in self._text_cache:
            model = self.load_model()
            model_device = next(model.parameters()).device
            prompts = self.prompts(class_names)
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


def _one_line(error: BaseException, limit: int = 300) -> str:
    """An error's message on one line (hub errors span several), cut to ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _weights_source(cfg: dict[str, Any]) -> tuple[str, str]:
    """Where open_clip downloads a tag's weights from: the file for messages, and its URL."""
    hub = cfg.get("hf_hub", "")
    if hub and _has_hf_hub():
        repo, filename = os.path.split(hub)
        url = f"https://huggingface.co/{repo}"
        return f"{filename or _HF_WEIGHTS_NAME} of {url}", url
    url = cfg.get("url", "")
    return url, url


def _cached_file(cfg: dict[str, Any], cache_dir: str | None) -> Path | None:
    """The tag's weights file if open_clip's download would find it in the cache, without any network."""
    hub = cfg.get("hf_hub", "")
    if hub and _has_hf_hub():
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)
        filename = filename or _HF_WEIGHTS_NAME
        # open_clip prefers a safetensors file next to a .bin/.pth one, then the file itself.
        candidates = [filename]
        if filename == _HF_WEIGHTS_NAME:
            candidates.insert(0, "open_clip_model.safetensors")
        elif filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        for name in candidates:
            found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
        return None
    url = cfg.get("url", "")
    if url:
        path = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
        return path if path.is_file() else None
    return None


def _has_hf_hub() -> bool:
    from open_clip.pretrained import has_hf_hub

    return has_hf_hub()


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _openai_mean() -> tuple[float, ...]:
    from open_clip import OPENAI_DATASET_MEAN

    return OPENAI_DATASET_MEAN


def _openai_std() -> tuple[float, ...]:
    from open_clip import OPENAI_DATASET_STD

    return OPENAI_DATASET_STD
