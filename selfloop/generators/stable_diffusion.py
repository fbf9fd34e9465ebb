"""Stable Diffusion with a fresh LoRA adapter per generation, fine-tuned on class prompts."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from selfloop.core.errors import MissingWeightsError
from selfloop.core.eval_mode import evaluating
from selfloop.generators.base import ConditionalGenerator, to_signed_unit
from selfloop.generators.sd15_shapes import RANDOM_SD15_SHAPES

__all__ = ["RANDOM_SD15_SHAPES", "SD15_REPO", "SampleScheduler", "StableDiffusionLoRA", "Weights"]

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""The Hugging Face repository of Stable Diffusion 1.5."""

SampleScheduler = Literal["ddim", "dpm", "euler", "pndm"]
Weights = Literal["pretrained", "random-sd15-shapes"]

_COMPONENTS = ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler")
_LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
_ADAPTER = "default"


class StableDiffusionLoRA(ConditionalGenerator):
    """Stable Diffusion (1.5 in the paper) fine-tuned with a LoRA adapter on ``prompt_template`` prompts.

    Every generation the loop builds a fresh module: the frozen base model is loaded from
    ``pretrained_path`` and a new LoRA adapter (``LoraConfig(r=rank, lora_alpha=alpha,
    init_lora_weights="gaussian")``: A Gaussian, B zero, so the adapter starts as a no-op) is added to
    the UNet's attention projections ``to_q``, ``to_k``, ``to_v`` and ``to_out.0``, as in diffusers'
    ``examples/text_to_image/train_text_to_image_lora.py``. Only the LoRA weights train (in fp32);
    VAE, text encoder and UNet stay frozen. ``generator_state`` is the LoRA alone.

    Training (``training_step``): uint8 images -> [-1, 1] -> (resized to ``train_resolution``) ->
    VAE latents x ``scaling_factor``; noise and uniform timesteps from the DDPM training scheduler;
    MSE between the UNet's prediction and the noise (or velocity, per the scheduler's
    ``prediction_type``), conditioned on the prompt of each image's class (``self.class_names``, set
    by the loop). The 15 prompt embeddings are computed once per fit and cached.

    Precision follows the Trainer: ``--trainer.precision bf16-mixed`` (or ``16-mixed``) autocasts
    the forward passes and keeps every weight in fp32 (SD 1.5 weighs about 4 GiB in fp32);
    ``bf16-true`` / ``16-true`` halve the frozen weights while the LoRA weights are cast back to fp32
    before the optimizer is built. Sampling at the end of a fit runs under the same precision
    context. ``32-true`` is the CPU setting.

    Args:
        num_classes: classes to condition on (linked from the data set).
        channels: image channels (linked from the data set; must be 3).
        image_size: side of the images the loop trains on and receives (linked from the data set).
        pretrained_path: a local diffusers Stable Diffusion folder (holding ``model_index.json``,
            ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``). Get SD 1.5 with
            ``huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir PATH``.
        allow_download: let ``from_pretrained`` fetch a missing model from the Hugging Face Hub
            (``pretrained_path`` may then be a repository id); off by default: files are local only.
        weights: ``pretrained`` loads ``pretrained_path``; ``random-sd15-shapes`` builds SD 1.5's
            published UNet, VAE and CLIP text encoder configs (``selfloop.generators.sd15_shapes``) with
            random weights and an offline byte-level tokenizer, ignoring ``pretrained_path``. For
            benchmarks only (SD 1.5's speed and memory, noise for images): such a model is not
            pretrained (``self.pretrained`` is False), a warning says so, and the config records it.
        rank: LoRA rank r.
        alpha: LoRA alpha (the update is scaled by ``alpha / rank``).
        lr: AdamW learning rate of the LoRA weights.
        weight_decay: AdamW weight decay.
        prompt_template: the prompt of a class; ``{name}`` is replaced by its class name.
        sample_scheduler: the sampler: ``ddim`` (DDIMScheduler), ``dpm`` (DPMSolverMultistepScheduler,
            i.e. DPM-Solver++), ``euler`` (EulerDiscreteScheduler) or ``pndm`` (PNDMScheduler, SD 1.5's
            default), each built from the model's scheduler config.
        sample_steps: denoising steps per sample.
        guidance_scale: classifier-free guidance scale (1 disables guidance).
        sample_resolution: side of the generated images before they are resized to ``image_size``
            (default ``image_size``; a multiple of 8).
        train_resolution: side the training images are resized to before encoding (default
            ``image_size``; a multiple of 8). Keep it equal to ``sample_resolution``.
        sample_batch_size: images per pipeline call (caps the loop's sampling batch size).
        gradient_checkpointing: recompute UNet activations in the backward pass to save memory; used
            on GPUs only (on a CPU it only costs time).
        min_steps: the fewest optimizer steps of a LoRA fit, whatever the data set's size (``null``:
            epochs decide).
        max_steps: the most optimizer steps of a LoRA fit (``null``: epochs decide).
    """

    def __init__(
        self,
        num_classes: int = 15,
        channels: int = 3,
        image_size: int = 224,
        pretrained_path: str = "weights/stable-diffusion-v1-5",
        allow_download: bool = False,
        weights: Weights = "pretrained",
        rank: int = 4,
        alpha: int = 4,
        lr: float = 1e-4,
        weight_decay: float = 1e-2,
        prompt_template: str = "a photo of a {name}",
        sample_scheduler: SampleScheduler = "dpm",
        sample_steps: int = 25,
        guidance_scale: float = 7.5,
        sample_resolution: int | None = None,
        train_resolution: int | None = None,
        sample_batch_size: int = 16,
        gradient_checkpointing: bool = True,
        min_steps: int | None = None,
        max_steps: int | None = None,
    ) -> None:
        super().__init__(num_classes, channels, image_size, min_steps=min_steps, max_steps=max_steps)
        self.save_hyperparameters()
        if channels != 3:
            raise ValueError(
                f"Stable Diffusion generates RGB images: --data.channels must be 3, got {channels}"
            )
        for flag, value in (
            ("rank", rank),
            ("sample_steps", sample_steps),
            ("sample_batch_size", sample_batch_size),
        ):
            if value < 1:
                raise ValueError(f"--generator.init_args.{flag} must be >= 1, got {value}")
        for flag, value in (("sample_resolution", sample_resolution), ("train_resolution", train_resolution)):
            if value is not None and (value < 8 or value % 8):
                raise ValueError(
                    f"--generator.init_args.{flag} must be a multiple of 8 (the VAE's factor), got {value}"
                )
        if "{name}" not in prompt_template:
            raise ValueError(
                f"--generator.init_args.prompt_template must contain {{name}}, got {prompt_template!r}"
            )

        from diffusers import DDPMScheduler
        from peft import LoraConfig

        if weights == RANDOM_SD15_SHAPES:
            self._build_random_sd15()
        elif weights == "pretrained":
            self._load_pretrained(pretrained_path, allow_download)
        else:
            raise ValueError(
                f"--generator.init_args.weights must be 'pretrained' or {RANDOM_SD15_SHAPES!r}, got {weights!r}"
            )
        self.noise_scheduler = DDPMScheduler.from_config(self.scheduler_config)
        for module in (self.unet, self.vae, self.text_encoder):
            module.requires_grad_(False)
            module.eval()
        self.unet.add_adapter(
            LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=_LORA_TARGETS),
            adapter_name=_ADAPTER,
        )
        _cast_trainable_to_fp32(self.unet)
        self._prompt_cache: dict[tuple, Tensor] = {}

    @classmethod
    def image_size_problem(cls, size: int, init_args: Mapping[str, Any], flag: str) -> str | None:
        unset = [k for k in ("sample_resolution", "train_resolution") if init_args.get(k) is None]
        # The VAE downsamples by 8; an image size is only used as a resolution where none is given.
        if unset and (size < 8 or size % 8):
            flags = " and ".join(f"--generator.init_args.{k}" for k in unset)
            return (
                f"{flag} must be a multiple of 8 (8, 16, 24, ...; the VAE's factor) for the generator "
                f"{cls.__name__}, got {size}, unless {flags} {'is' if len(unset) == 1 else 'are'} set "
                "(the samples are then resized to the image size)"
            )
        return super().image_size_problem(size, init_args, flag)

    @classmethod
    def missing_weights(cls, init_args: Mapping[str, Any]) -> str | None:
        if init_args.get("weights", "pretrained") != "pretrained":
            return None
        err = pretrained_weights_problem(
            init_args.get("pretrained_path", "weights/stable-diffusion-v1-5"),
            bool(init_args.get("allow_download")),
        )
        return None if err is None else str(err)

    def _load_pretrained(self, pretrained_path: str, allow_download: bool) -> None:
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        source = _resolve_pretrained(pretrained_path, allow_download)
        kwargs: dict[str, Any] = {"local_files_only": not allow_download}
        try:
            self.unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kwargs)
            self.vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **kwargs)
            self.text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **kwargs)
            self.tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kwargs)
            self.scheduler_config = dict(DDPMScheduler.load_config(source, subfolder="scheduler", **kwargs))
        except (OSError, ValueError) as err:
            raise MissingWeightsError(
                f"cannot load Stable Diffusion from {pretrained_path} ({type(err).__name__}: {err}). "
                + _how_to_get(pretrained_path),
                path=Path(pretrained_path),
            ) from err

    def _build_random_sd15(self) -> None:
        from selfloop.generators import sd15_shapes

        warnings.warn(
            f"--generator.init_args.weights {RANDOM_SD15_SHAPES}: Stable Diffusion 1.5's shapes with RANDOM "
            "weights, not pretrained (pretrained_path is ignored). Its images are noise; use it for "
            "benchmarks only, never for results.",
            UserWarning,
            stacklevel=3,
        )
        self.unet = sd15_shapes.build_unet()
        self.vae = sd15_shapes.build_vae()
        self.text_encoder = sd15_shapes.build_text_encoder()
        self.tokenizer = sd15_shapes.build_tokenizer()
        self.scheduler_config = dict(sd15_shapes.SCHEDULER_CONFIG)

    @property
    def pretrained(self) -> bool:
        """Whether the frozen base model was loaded from a checkpoint (False for random SD 1.5 shapes)."""
        return self.hparams.weights == "pretrained"

    @property
    def weights_description(self) -> str:
        """Where the base model's weights came from, in words (for logs and reports)."""
        if self.pretrained:
            return f"pretrained: {self.hparams.pretrained_path}"
        return f"{RANDOM_SD15_SHAPES}: SD 1.5 shapes, random weights, NOT pretrained (benchmarks only)"

    # Training ------------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> StableDiffusionLoRA:
        # Frozen parts stay in eval mode (the VAE and CLIP have no dropout at inference, the UNet's
        # attention dropout is 0 in SD 1.5 but may not be in other checkpoints).
        super().train(mode)
        self.vae.eval()
        self.text_encoder.eval()
        return self

    def on_fit_start(self) -> None:
        if self.hparams.gradient_checkpointing and self.device.type == "cuda":
            self.unet.enable_gradient_checkpointing()

    def configure_optimizers(self):
        # A ``*-true`` precision has cast the whole module (LoRA included) to half: train the LoRA in fp32.
        _cast_trainable_to_fp32(self.unet)
        params = [p for p in self.unet.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels, _ = batch
        pixels = to_signed_unit(images)
        resolution = self.hparams.train_resolution or self.image_size
        if pixels.shape[-1] != resolution or pixels.shape[-2] != resolution:
            pixels = F.interpolate(pixels, size=(resolution, resolution), mode="bilinear", antialias=True)
        with torch.no_grad():
            latents = self.vae.encode(pixels.to(_dtype(self.vae))).latent_dist.sample()
            # The noise schedule is applied in fp32 whatever the VAE's precision.
            latents = latents.float() * self.vae.config.scaling_factor
            cond = self.prompt_embeddings()[labels]
        noise = torch.randn_like(latents)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (len(latents),), device=latents.device).long()
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        prediction_type = self.noise_scheduler.config.prediction_type
        if prediction_type == "epsilon":
            target = noise
        elif prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            raise ValueError(f"unsupported prediction_type {prediction_type!r} in the scheduler config")
        unet_dtype = _dtype(self.unet)
        pred = self.unet(noisy.to(unet_dtype), timesteps, cond.to(unet_dtype)).sample
        loss = F.mse_loss(pred.float(), target.float())
        self.log("loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(images))
        return loss

    @torch.no_grad()
    def prompt_embeddings(self) -> Tensor:
        """Text-encoder embeddings ``(num_classes + 1, tokens, dim)``: each class prompt, then ``""``.

        The last row, the empty prompt, is the unconditional input of classifier-free guidance.
        Cached per (prompts, device, dtype): the text encoder is frozen.
        """
        prompts = [*self.prompts(range(self.num_classes)), ""]
        key = (tuple(prompts), self.device, _dtype(self.text_encoder))
        if key not in self._prompt_cache:
            # CLIP's 77 tokens; a tokenizer saved without model_max_length reports a huge sentinel.
            max_length = min(
                self.tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings
            )
            tokens = self.tokenizer(
                prompts,
                padding="max_length",
                max_length=max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.device)
            self._prompt_cache = {key: self.text_encoder(tokens)[0]}
        return self._prompt_cache[key]

    def prompts(self, labels: Any) -> list[str]:
        """The prompt of each label (an iterable of class ids)."""
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names for {self.num_classes} classes")
        return [self.hparams.prompt_template.format(name=self.class_names[int(c)]) for c in labels]

    # Sampling ------------------------------------------------------------------------------------

    def pipeline(self):
        """A ``StableDiffusionPipeline`` on this module's components (LoRA active) and the chosen sampler."""
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.unet,
            scheduler=_sample_scheduler(self.hparams.sample_scheduler, self.scheduler_config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @torch.no_grad()
    def sample(self, labels: Tensor, seed: int, batch_size: int = 256) -> Tensor:
        resolution = self.hparams.sample_resolution or self.image_size
        size = self.image_size
        out = [torch.empty(0, 3, size, size, dtype=torch.uint8)]
        if len(labels) == 0:
            return out[0]
        home = self.device
        # Lightning's strategy teardown moves the module to the CPU before ``on_fit_end``, where the
        # loop samples: sample on the Trainer's device (SD 1.5 on a CPU takes minutes per image).
        trainer = self._trainer
        device = trainer.strategy.root_device if trainer is not None else home
        if device != home:
            self.to(device)
        with evaluating(self):
            pipe = self.pipeline()
            generator = torch.Generator(self.device).manual_seed(seed)
            chunk_size = max(1, min(batch_size, self.hparams.sample_batch_size))
            with self._precision_context():
                embeddings = self.prompt_embeddings()
                for chunk in labels.split(chunk_size):
                    images = pipe(
                        prompt_embeds=embeddings[chunk],
                        negative_prompt_embeds=embeddings[-1:].expand(len(chunk), -1, -1),
                        height=resolution,
                        width=resolution,
                        num_inference_steps=self.hparams.sample_steps,
                        guidance_scale=self.hparams.guidance_scale,
                        generator=generator,
                        output_type="pt",
                    ).images.float()
                    if resolution != size:
                        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
                    out.append((images.clamp(0, 1) * 255).round().to(torch.uint8).cpu())
        if device != home:
            self.to(home)
        return torch.cat(out)

    def _precision_context(self) -> contextlib.AbstractContextManager:
        """The Trainer's autocast (``*-mixed``) when attached to one, else nothing."""
        trainer = self._trainer
        if trainer is None:
            return contextlib.nullcontext()
        return trainer.precision_plugin.forward_context()

    # State ---------------------------------------------------------------------------------------

    def generator_state(self) -> dict[str, Tensor]:
        """The LoRA weights only (peft names, adapter name stripped), on the CPU."""
        from peft.utils import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.unet, adapter_name=_ADAPTER)
        return {k: v.detach().cpu().clone() for k, v in state.items()}

    def load_generator_state(self, state: dict[str, Tensor]) -> None:
        """Set the LoRA weights from ``generator_state``'s output."""
        from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

        expected = {
            k: v.shape for k, v in get_peft_model_state_dict(self.unet, adapter_name=_ADAPTER).items()
        }
        missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
        mismatched = sorted(k for k in expected.keys() & state.keys() if state[k].shape != expected[k])
        if missing or unexpected or mismatched:
            raise ValueError(
                f"the LoRA state does not fit this generator (rank {self.hparams.rank}): missing {missing[:2]}, "
                f"unexpected {unexpected[:2]}, wrong shape {mismatched[:2]}; was it saved with other "
                "--generator.init_args (rank, pretrained_path, weights)?"
            )
        set_peft_model_state_dict(self.unet, state, adapter_name=_ADAPTER)

    def save_lora(self, path: str | Path) -> Path:
        """Save the LoRA where a stock pipeline loads it with ``pipe.load_lora_weights(path)``.

        Writes ``<path>/pytorch_lora_weights.safetensors`` (diffusers' format, with the adapter
        config as metadata so that ``alpha != rank`` round-trips), as diffusers' LoRA training
        example does.

        Returns:
            The folder written.
        """
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        path = Path(path)
        state = convert_state_dict_to_diffusers(get_peft_model_state_dict(self.unet, adapter_name=_ADAPTER))
        StableDiffusionPipeline.save_lora_weights(
            save_directory=path,
            unet_lora_layers={k: v.detach().cpu().contiguous() for k, v in state.items()},
            unet_lora_adapter_metadata=self.unet.peft_config[_ADAPTER].to_dict(),
            safe_serialization=True,
        )
        return path

    def save_artifacts(self, folder: Path) -> None:
        """Write the LoRA in diffusers' format to ``<folder>/lora/`` (see ``save_lora``)."""
        self.save_lora(Path(folder) / "lora")


def _dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype of a module's frozen weights (its first floating parameter that does not train)."""
    for p in module.parameters():
        if p.is_floating_point() and not p.requires_grad:
            return p.dtype
    return next(module.parameters()).dtype


def _cast_trainable_to_fp32(module: torch.nn.Module) -> None:
    for p in module.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


def _sample_scheduler(name: SampleScheduler, config: dict[str, Any]):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, PNDMScheduler

    classes = {
        "ddim": DDIMScheduler,
        "dpm": DPMSolverMultistepScheduler,
        "euler": EulerDiscreteScheduler,
        "pndm": PNDMScheduler,
    }
    if name not in classes:
        raise ValueError(
            f"--generator.init_args.sample_scheduler must be one of {sorted(classes)}, got {name!r}"
        )
    return classes[name].from_config(config)


def _how_to_get(path: str) -> str:
    return (
        f"Put a diffusers Stable Diffusion folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
        f"scheduler/) there, e.g. on a machine with internet: `huggingface-cli download {SD15_REPO} "
        f"--local-dir {path}` (or `hf download {SD15_REPO} --local-dir {path}`), and copy it over; or set "
        f"--generator.init_args.pretrained_path to where it is."
    )


def _shown(path: Path) -> str:
    """A path as given, with its absolute form when it is relative (the working directory matters)."""
    return str(path) if path.is_absolute() else f"{path} (= {path.absolute()})"


def pretrained_weights_problem(pretrained_path: str, allow_download: bool) -> MissingWeightsError | None:
    """The error building the generator would raise for Stable Diffusion weights that are not there (``None``
    when they are, or may be downloaded); nothing is loaded."""
    try:
        _resolve_pretrained(pretrained_path, allow_download)
    except MissingWeightsError as err:
        return err
    return None


def _resolve_pretrained(path: str, allow_download: bool) -> str:
    """The local folder to load from, or with ``allow_download`` a Hub id."""
    folder = Path(os.path.expanduser(path))
    if folder.is_dir():
        missing = [name for name in _COMPONENTS if not (folder / name).exists()]
        if missing and not allow_download:
            raise MissingWeightsError(
                f"{_shown(folder)} is not a complete diffusers Stable Diffusion folder: {', '.join(missing)} missing. "
                + _how_to_get(path),
                path=folder,
            )
        return str(folder)
    if allow_download:
        return path
    raise MissingWeightsError(
        f"Stable Diffusion weights not found: {_shown(folder)} does not exist (downloading is off; "
        f"--generator.init_args.allow_download true lets diffusers fetch {SD15_REPO}). " + _how_to_get(path),
        path=folder,
    )
