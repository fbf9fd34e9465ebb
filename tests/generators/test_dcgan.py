import lightning as L
import pytest
import torch

from selfloop.data.image_set import ImageSet
from selfloop.generators.dcgan import ConditionalDCGAN, cpu_has_bf16


def _fit(gan: ConditionalDCGAN, steps: int = 3) -> None:
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    data = ImageSet(images, torch.arange(32) % 4, torch.zeros(32, dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=8, collate_fn=lambda b: b)
    L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(gan, loader)


def test_sample_is_uint8_of_the_data_shape_and_reproducible_by_seed():
    gan = ConditionalDCGAN(num_classes=4, channels=3, image_size=16, width=8, latent_dim=8)
    labels = torch.tensor([0, 1, 2, 3, 3])
    first = gan.sample(labels, seed=5, batch_size=2)
    assert first.dtype == torch.uint8 and first.shape == (5, 3, 16, 16)
    assert torch.equal(first, gan.sample(labels, seed=5, batch_size=2))
    assert not torch.equal(first, gan.sample(labels, seed=6, batch_size=2))


def test_the_label_changes_the_image_for_the_same_noise():
    torch.manual_seed(0)
    gan = ConditionalDCGAN(num_classes=4, channels=1, image_size=16, width=8, latent_dim=8)
    a = gan.sample(torch.zeros(4, dtype=torch.long), seed=1)
    b = gan.sample(torch.full((4,), 3), seed=1)
    assert not torch.equal(a, b)


def test_training_moves_the_generator_and_sampling_uses_its_moving_average():
    torch.manual_seed(0)
    gan = ConditionalDCGAN(num_classes=4, channels=3, image_size=16, width=8, latent_dim=8, ema_decay=0.5)
    before = [p.detach().clone() for p in gan.generator.parameters()]
    ema_before = [p.detach().clone() for p in gan.generator_ema.parameters()]
    _fit(gan)
    live = list(gan.generator.parameters())
    ema = list(gan.generator_ema.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, live, strict=True))
    # The average lies between where it started and where the live weights went, on neither end.
    assert any(not torch.equal(e, p) for e, p in zip(ema, live, strict=True))
    assert any(not torch.equal(e, b) for e, b in zip(ema, ema_before, strict=True))
    assert all(not p.requires_grad for p in ema)


def test_image_size_must_be_a_power_of_two_multiple_of_four():
    with pytest.raises(ValueError, match="--data.image_size"):
        ConditionalDCGAN(image_size=28)


def test_averaged_generator_gets_its_own_batch_norm_statistics():
    torch.manual_seed(0)
    gan = ConditionalDCGAN(num_classes=4, channels=3, image_size=16, width=8, latent_dim=8)
    _fit(gan)
    norms = [m for m in gan.generator_ema.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    live = [m for m in gan.generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(int(n.num_batches_tracked) == 20 for n in norms)
    # Statistics of the averaged weights, not a copy of the live network's.
    assert any(not torch.equal(n.running_var, m.running_var) for n, m in zip(norms, live, strict=True))


CPUINFO = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
    "flags\t\t: fpu vme de pse avx2 avx512f {extra}\n\n"
)


@pytest.mark.parametrize(
    "extra, expected", [("avx512_bf16", True), ("amx_bf16 amx_tile", True), ("avx512bw", False)]
)
def test_bf16_instructions_are_read_from_the_cpus_flags(tmp_path, extra, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(extra=extra) * 2)  # /proc/cpuinfo has a block per core
    assert cpu_has_bf16(cpuinfo) is expected
    assert cpu_has_bf16(tmp_path / "missing") is False  # not Linux: no bf16, float32 as before


def _conv_outputs(gan: ConditionalDCGAN) -> set[tuple[torch.dtype, bool]]:
    """(dtype, channels-last) of what the discriminator's first convolution computed during a short fit."""
    seen: set[tuple[torch.dtype, bool]] = set()
    conv = next(m for m in gan.discriminator.modules() if isinstance(m, torch.nn.Conv2d))

    def record(module, inputs, output) -> None:
        channels_last = output.is_contiguous(memory_format=torch.channels_last) and not output.is_contiguous()
        seen.add((output.dtype, channels_last))

    handle = conv.register_forward_hook(record)
    _fit(gan, steps=2)
    handle.remove()
    return seen


@pytest.mark.parametrize(
    "precision, has_bf16, expected",
    [("32", True, torch.float32), ("bf16", False, torch.bfloat16), ("auto", True, torch.bfloat16),
     ("auto", False, torch.float32)],
)  # fmt: skip
def test_a_cpu_fit_computes_in_bf16_only_where_asked_or_detected(monkeypatch, precision, has_bf16, expected):
    monkeypatch.setattr("selfloop.generators.dcgan.cpu_has_bf16", lambda: has_bf16)
    torch.manual_seed(0)
    gan = ConditionalDCGAN(
        num_classes=4, channels=3, image_size=16, width=8, latent_dim=8, cpu_precision=precision
    )
    # bf16 runs channels-last, the layout of oneDNN's fast bf16 convolutions; float32 keeps the default layout.
    assert _conv_outputs(gan) == {(expected, expected == torch.bfloat16)}
    # Weights, their moving average and the samples stay float32 either way.
    assert {p.dtype for p in gan.parameters()} == {torch.float32}
    assert gan.sample(torch.tensor([0, 1]), seed=0).dtype == torch.uint8
