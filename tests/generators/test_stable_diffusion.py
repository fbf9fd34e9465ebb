"""StableDiffusionLoRA on a tiny Stable Diffusion built from configs and saved as a diffusers folder.

No network: the UNet, VAE and CLIP text encoder are randomly initialised tiny models (the recipe of
diffusers' own pipeline tests), the CLIP tokenizer is a byte-level vocabulary without merges, and
everything is saved with ``StableDiffusionPipeline.save_pretrained`` so that the generator loads it
through ``pretrained_path`` exactly as it loads SD 1.5.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from selfloop.classifiers.pretrained import MissingWeightsError
from selfloop.data.image_set import ImageSet, collate_batch
from selfloop.generators import sd15_shapes
from selfloop.generators.stable_diffusion import RANDOM_SD15_SHAPES, StableDiffusionLoRA

ROOT = Path(__file__).resolve().parents[2]
CLASS_NAMES = ["cat", "dog", "ski"]


def build_tiny_sd(folder: Path) -> Path:
    """Save a tiny, randomly initialised Stable Diffusion pipeline to ``folder`` (about 250 KB)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    # SD 1.5's offline tokenizer: byte-level vocabulary (ids 0..511), <|startoftext|> 512, <|endoftext|> 513.
    tokenizer = sd15_shapes.build_tokenizer()

    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            block_out_channels=(4, 8),
            layers_per_block=1,
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=8,
            norm_num_groups=4,
            attention_head_dim=2,
        )
        vae = AutoencoderKL(
            block_out_channels=[4, 8],
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 2,
            up_block_types=["UpDecoderBlock2D"] * 2,
            latent_channels=4,
            norm_num_groups=4,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=512,
                eos_token_id=513,
                pad_token_id=513,
                hidden_size=8,
                intermediate_size=16,
                layer_norm_eps=1e-05,
                num_attention_heads=2,
                num_hidden_layers=2,
                vocab_size=1000,
                max_position_embeddings=77,
            )
        )
    scheduler = PNDMScheduler.from_config(sd15_shapes.SCHEDULER_CONFIG)  # SD 1.5's scheduler config
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("weights") / "tiny-sd")


def make(sd_dir: Path, seed: int = 0, **kwargs) -> StableDiffusionLoRA:
    """A generator as the loop builds it each generation: seeded, then constructed."""
    kwargs = {"num_classes": 3, "channels": 3, "image_size": 16, "sample_steps": 2, **kwargs}
    torch.manual_seed(seed)
    generator = StableDiffusionLoRA(pretrained_path=str(sd_dir), **kwargs)
    generator.class_names = CLASS_NAMES
    return generator


def fit(generator: StableDiffusionLoRA, steps: int = 3, precision: str = "32-true") -> None:
    torch.manual_seed(1)
    data = ImageSet.generated(torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8), torch.arange(8) % 3)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(generator, DataLoader(data, batch_size=4, collate_fn=collate_batch))


def lora_tensors(generator: StableDiffusionLoRA, part: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in generator.generator_state().items() if f".{part}." in k}


def test_only_lora_weights_are_trainable_and_saved(sd_dir):
    generator = make(sd_dir)
    trainable = {n for n, p in generator.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert all(p.dtype == torch.float32 for n, p in generator.named_parameters() if p.requires_grad)
    state = generator.generator_state()
    assert len(state) == len(trainable)
    assert all(k.endswith(("lora_A.weight", "lora_B.weight")) for k in state)
    # The four attention projections of every attention block carry an adapter.
    for projection in ("to_q", "to_k", "to_v", "to_out.0"):
        assert any(f".{projection}.lora_A" in k for k in state)


def test_lora_is_fresh_every_generation(sd_dir):
    first = make(sd_dir, seed=1)
    initial_a = lora_tensors(first, "lora_A")
    assert all(torch.count_nonzero(v) == 0 for v in lora_tensors(first, "lora_B").values())
    fit(first)
    trained = first.generator_state()

    second = make(sd_dir, seed=2)
    # Gaussian A drawn anew, B zero again: nothing of the previous generation's adapter survives.
    assert all(not torch.equal(v, initial_a[k]) for k, v in lora_tensors(second, "lora_A").items())
    assert all(torch.count_nonzero(v) == 0 for v in lora_tensors(second, "lora_B").values())
    assert all(not torch.equal(v, trained[k]) for k, v in second.generator_state().items())
    # The same seed gives the same adapter, so runs are reproducible.
    again = make(sd_dir, seed=1)
    assert all(torch.equal(v, initial_a[k]) for k, v in lora_tensors(again, "lora_A").items())


def test_training_changes_lora_and_never_the_base_model(sd_dir):
    generator = make(sd_dir, lr=1e-2)
    base = {
        **{
            f"unet.{n}": p.detach().clone()
            for n, p in generator.unet.named_parameters()
            if not p.requires_grad
        },
        **{f"vae.{n}": p.detach().clone() for n, p in generator.vae.named_parameters()},
        **{f"text.{n}": p.detach().clone() for n, p in generator.text_encoder.named_parameters()},
    }
    assert any("attn2.to_q.base_layer.weight" in k for k in base)
    before = generator.generator_state()
    fit(generator)
    after = generator.generator_state()
    current = {
        **{f"unet.{n}": p for n, p in generator.unet.named_parameters() if not p.requires_grad},
        **{f"vae.{n}": p for n, p in generator.vae.named_parameters()},
        **{f"text.{n}": p for n, p in generator.text_encoder.named_parameters()},
    }
    assert current.keys() == base.keys()
    assert all(torch.equal(current[k], v) for k, v in base.items())
    assert any(not torch.equal(after[k], v) for k, v in before.items() if ".lora_B." in k)
    assert all(torch.count_nonzero(v) > 0 for k, v in after.items() if ".lora_B." in k)


def test_half_precision_halves_the_base_model_and_trains_lora_in_fp32(sd_dir):
    generator = make(sd_dir, lr=1e-2)
    before = generator.generator_state()
    fit(generator, steps=2, precision="bf16-true")
    assert generator.unet.conv_in.weight.dtype == generator.vae.encoder.conv_in.weight.dtype == torch.bfloat16
    after = generator.generator_state()
    assert {v.dtype for v in after.values()} == {torch.float32}
    assert any(not torch.equal(after[k], v) for k, v in before.items())
    assert generator.sample(torch.tensor([0, 2]), seed=0).dtype == torch.uint8


def test_generator_state_round_trips(sd_dir):
    trained = make(sd_dir, seed=3, lr=1e-2)
    fit(trained)
    fresh = make(sd_dir, seed=4)
    fresh.load_generator_state(trained.generator_state())
    labels = torch.tensor([0, 1, 2])
    assert torch.equal(fresh.sample(labels, seed=5), trained.sample(labels, seed=5))
    with pytest.raises(ValueError, match="does not fit"):
        make(sd_dir, rank=2).load_generator_state(trained.generator_state())


def test_saved_lora_loads_into_a_stock_pipeline(sd_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    generator = make(sd_dir, rank=4, alpha=8)  # alpha != rank: the scale must survive the round trip
    state = generator.generator_state()
    torch.manual_seed(6)
    generator.load_generator_state(
        {k: torch.randn_like(v) if ".lora_B." in k else v for k, v in state.items()}
    )
    folder = generator.save_lora(tmp_path / "lora")
    assert (folder / "pytorch_lora_weights.safetensors").is_file()

    pipe = StableDiffusionPipeline.from_pretrained(str(sd_dir), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)

    def run() -> torch.Tensor:
        return pipe(
            "a photo of a dog",
            height=16,
            width=16,
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).images

    without = run()
    pipe.load_lora_weights(str(folder))
    with_lora = run()
    assert not torch.allclose(without, with_lora)
    # The stock pipeline's UNet now computes exactly what the generator's UNet computes.
    x, t, context = torch.randn(2, 4, 2, 2), torch.tensor([10, 500]), torch.randn(2, 7, 8)
    with torch.no_grad():
        assert torch.allclose(
            pipe.unet(x, t, context).sample, generator.unet(x, t, context).sample, atol=1e-6
        )


def test_save_artifacts_writes_the_lora_folder(sd_dir, tmp_path):
    make(sd_dir).save_artifacts(tmp_path)
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()


@pytest.mark.parametrize("scheduler", ["ddim", "dpm", "euler", "pndm"])
def test_sample_returns_uint8_images_reproducibly(sd_dir, scheduler):
    generator = make(sd_dir, sample_scheduler=scheduler, sample_resolution=24)
    labels = torch.tensor([0, 1, 2, 0, 1])
    images = generator.sample(labels, seed=7, batch_size=2)
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 16, 16) and images.device.type == "cpu"
    assert torch.equal(images, generator.sample(labels, seed=7, batch_size=4))
    assert not torch.equal(images, generator.sample(labels, seed=8, batch_size=2))
    assert generator.sample(labels[:0], seed=7).shape == (0, 3, 16, 16)


def test_prompts_use_the_class_names(sd_dir):
    generator = make(sd_dir, prompt_template="an image of a {name}, photographed")
    assert generator.prompts([2, 0]) == ["an image of a ski, photographed", "an image of a cat, photographed"]
    assert generator.prompt_embeddings().shape == (4, 77, 8)  # 3 classes and the empty prompt


def test_missing_directory_names_the_path_and_how_to_get_it(tmp_path):
    missing = tmp_path / "nowhere" / "sd15"
    with pytest.raises(MissingWeightsError) as err:
        StableDiffusionLoRA(pretrained_path=str(missing))
    message = str(err.value)
    assert str(missing) in message
    assert "huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5" in message
    assert isinstance(err.value, FileNotFoundError)


def test_incomplete_directory_names_what_is_missing(sd_dir, tmp_path):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(sd_dir, partial)
    shutil.rmtree(partial / "vae")
    with pytest.raises(MissingWeightsError, match="vae missing") as err:
        StableDiffusionLoRA(pretrained_path=str(partial))
    assert str(partial) in str(err.value)


def test_bad_arguments_name_the_flag(sd_dir):
    with pytest.raises(ValueError, match="sample_resolution"):
        make(sd_dir, sample_resolution=20)
    with pytest.raises(ValueError, match="prompt_template"):
        make(sd_dir, prompt_template="a photo")
    with pytest.raises(ValueError, match="weights"):
        make(sd_dir, weights="imagenet")


# SD 1.5 shapes with random weights (benchmarks) ---------------------------------------------------


def test_sd15_shapes_have_the_published_parameter_counts():
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with init_empty_weights():  # shapes only: no memory, no time
        unet = sd15_shapes.build_unet()
        vae = sd15_shapes.build_vae()
        text_encoder = sd15_shapes.build_text_encoder()
    counts = {
        name: sum(p.numel() for p in module.parameters())
        for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder))
    }
    assert counts == sd15_shapes.PARAMETER_COUNTS
    assert round(counts["unet"] / 1e6, 1) == 859.5
    assert round(counts["vae"] / 1e6, 1) == 83.7
    assert round(counts["text_encoder"] / 1e6, 1) == 123.1
    assert next(unet.parameters()).device.type == "meta"
    # Every field of the written configs is one the installed diffusers / transformers read.
    for cls, config in (
        (UNet2DConditionModel, sd15_shapes.UNET_CONFIG),
        (AutoencoderKL, sd15_shapes.VAE_CONFIG),
    ):
        unused = cls.extract_init_dict(config)[1]  # (init_dict, unused_kwargs, ...)
        assert not unused, f"{cls.__name__} ignores {sorted(unused)}"
    assert all(getattr(text_encoder.config, k) == v for k, v in sd15_shapes.TEXT_ENCODER_CONFIG.items())
    assert unet.config.cross_attention_dim == text_encoder.config.hidden_size == 768
    assert unet.config.sample_size * 8 == vae.config.sample_size == 512
    assert vae.config.scaling_factor == 0.18215 and vae.config.latent_channels == unet.config.in_channels == 4


def test_random_sd15_shapes_generator_is_reported_as_not_pretrained(sd_dir):
    with pytest.warns(UserWarning, match="RANDOM weights, not pretrained"), torch.device("meta"):
        generator = StableDiffusionLoRA(num_classes=3, image_size=512, weights=RANDOM_SD15_SHAPES)
    assert not generator.pretrained
    assert "NOT pretrained" in generator.weights_description
    # The config dump (hparams, and the CLI's config.yaml from the same arguments) records the choice.
    assert generator.hparams["weights"] == RANDOM_SD15_SHAPES
    assert sum(p.numel() for p in generator.unet.parameters() if not p.requires_grad) == 859_520_964
    # Rank-4 LoRA on SD 1.5's to_q/to_k/to_v/to_out.0: 0.8M trainable weights.
    assert sum(p.numel() for p in generator.unet.parameters() if p.requires_grad) == 797_184
    assert generator.scheduler_config["beta_schedule"] == "scaled_linear"
    generator.class_names = CLASS_NAMES
    tokens = generator.tokenizer(
        [*generator.prompts(range(3)), ""], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    assert (
        tokens.shape == (4, 77)
        and tokens.min() >= 0
        and tokens.max() < generator.text_encoder.config.vocab_size
    )

    loaded = make(sd_dir)
    assert loaded.pretrained and loaded.hparams["weights"] == "pretrained"
    assert loaded.weights_description == f"pretrained: {sd_dir}"


# End to end -------------------------------------------------------------------------------------


def _write_hard_imagenet_tree(root: Path) -> dict[str, Path]:
    """The tiny Hard ImageNet tree of ``tests/data/test_hard_imagenet.py`` (loaded by path)."""
    path = ROOT / "tests" / "data" / "test_hard_imagenet.py"
    spec = importlib.util.spec_from_file_location("_hard_imagenet_tree", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tree(root, train_per_class=3, val_per_class=1)


@pytest.mark.slow
def test_two_generations_on_hard_imagenet_with_stable_diffusion(sd_dir, tmp_path, monkeypatch):
    from selfloop.cli.app import SelfLoopCLI

    monkeypatch.chdir(ROOT)
    tree = _write_hard_imagenet_tree(tmp_path / "data")
    run = tmp_path / "run"
    SelfLoopCLI(
        args=[
            "fit", "--config", "configs/hardimagenet.yaml",
            "--data.init_args.imagenet_root", str(tree["imagenet"]),
            "--data.init_args.hard_imagenet_root", str(tree["hard"]),
            "--data.init_args.image_size", "32",
            "--data.init_args.val_fraction", "0.34",
            "--data.init_args.decode_threads", "2",
            "--data.init_args.batch_size", "16",
            "--generator.init_args.pretrained_path", str(sd_dir),
            "--generator.init_args.train_resolution", "32",
            "--generator.init_args.sample_resolution", "32",
            "--generator.init_args.sample_steps", "2",
            "--model.arch", "lenet",
            "--model.pretrained", "false",
            "--model.lr", "0.001",
            "--loop.archs", "[lenet]",
            "--loop.generations", "2",
            "--loop.generator_epochs", "1",
            "--loop.samples_per_generation", "30",
            "--loop.run_dir", str(run),
            "--filter.scorers", "[{class_path: selfloop.filtering.scorers.UncertaintyScorer}]",
            "--trainer.precision", "32-true",
            "--trainer.accelerator", "cpu",
            "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false",
        ]
    )  # fmt: skip
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    lenet = {(int(r["generation"]), r["metric"]): float(r["value"]) for r in rows if r["arch"] == "lenet"}
    for n in range(3):
        for metric in (
            "acc",
            "acc_object_gray",
            "acc_box_gray",
            "acc_box_tile",
            "drop_object_gray",
            "drop_box_tile",
        ):
            assert (n, metric) in lenet
            assert -1 <= lenet[(n, metric)] <= 1
        assert lenet[(n, "drop_box_gray")] == pytest.approx(lenet[(n, "acc")] - lenet[(n, "acc_box_gray")])
    generated = {
        (int(r["generation"]), r["metric"]): float(r["value"]) for r in rows if r["arch"] == "generator"
    }
    # The paper's score_range rule (appendix C): k = 2 candidates per class (fewer than 2 is refused), no
    # over-generation, and at least one survivor per class: the best of each class, both where they tie.
    assert generated[(1, "num_candidates")] == 30 and 15 <= generated[(1, "num_kept")] <= 30
    for n in (1, 2):
        # The generator's weights file of each generation is its LoRA alone.
        state = torch.load(run / "generations" / f"gen_{n:03d}" / "generator.pt", weights_only=True)
        assert state and all(".lora_A." in k or ".lora_B." in k for k in state)
        # ... and its LoRA in diffusers' format, for a stock pipeline's load_lora_weights.
        assert (
            run / "generations" / f"gen_{n:03d}" / "lora" / "pytorch_lora_weights.safetensors"
        ).stat().st_size > 0
    shard = torch.load(run / "queue" / "gen_001.pt", weights_only=True)
    assert shard["images"].dtype == torch.uint8 and shard["images"].shape[1:] == (3, 32, 32)
