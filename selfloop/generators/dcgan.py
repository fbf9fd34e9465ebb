"""Conditional DCGAN with an auxiliary classifier (AC-GAN) for 28-64 px images."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfloop.core.eval_mode import evaluating
from selfloop.generators.base import ConditionalGenerator, to_signed_unit, to_uint8

CPU_FLAGS = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
BN_RECALIBRATION_BATCHES = 20
BN_RECALIBRATION_SIZE = 128


def cpu_has_bf16(cpuinfo: Path = CPU_FLAGS) -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX-BF16), read from Linux's ``/proc/cpuinfo``;
    ``False`` where that file is not there (other systems)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = {
        flag
        for line in text.splitlines()
        if line.startswith("flags")
        for flag in line.split(":", 1)[1].split()
    }
    return any(flag in flags for flag in BF16_FLAGS)


def _num_upsamplings(image_size: int) -> int:
    problem = ConditionalDCGAN.image_size_problem(image_size, {}, "--data.image_size")
    if problem is not None:
        raise ValueError(problem)
    return int(math.log2(image_size / 4))


class _ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are chosen by the class (as in cGANs with projection / BigGAN).

    Plain batch norm after the input layer washes the one-hot label out of the activations; a
    per-class affine transform re-injects it at every resolution.
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.affine = nn.Linear(num_classes, 2 * num_features, bias=False)
        self.num_features = num_features

    def reset_affine(self) -> None:
        with torch.no_grad():
            self.affine.weight[: self.num_features].fill_(1.0)
            self.affine.weight[self.num_features :].zero_()

    def forward(self, x: Tensor, onehot: Tensor) -> Tensor:
        gamma, beta = self.affine(onehot).chunk(2, dim=1)
        return self.norm(x) * gamma[:, :, None, None] + beta[:, :, None, None]


class _Generator(nn.Module):
    def __init__(self, latent_dim: int, num_classes: int, channels: int, image_size: int, width: int) -> None:
        super().__init__()
        steps = _num_upsamplings(image_size)
        top = width * 2 ** (steps - 1)
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes, top * 16, bias=False), nn.BatchNorm1d(top * 16), nn.ReLU(True)
        )
        self.top = top
        self.ups = nn.ModuleList()
        self.norms = nn.ModuleList()
        ch = top
        for _ in range(steps - 1):
            self.ups.append(nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False))
            self.norms.append(_ConditionalBatchNorm2d(ch // 2, num_classes))
            ch //= 2
        self.to_image = nn.Sequential(nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh())

    def forward(self, z: Tensor, onehot: Tensor) -> Tensor:
        x = self.project(torch.cat([z, onehot], dim=1)).view(len(z), self.top, 4, 4)
        for up, norm in zip(self.ups, self.norms, strict=True):
            x = torch.relu(norm(up(x), onehot))
        return self.to_image(x)


class _Discriminator(nn.Module):
    def __init__(self, num_classes: int, channels: int, image_size: int, width: int) -> None:
        super().__init__()
        steps = _num_upsamplings(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(steps - 1):
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(0.2, True),
            ]
            ch *= 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.adversarial = nn.Linear(ch * 16, 1)
        # Projection-style conditioning: the real/fake score also sees the label, and the auxiliary
        # head must name the class (AC-GAN). Both push the generator to draw the intended class.
        self.embed = nn.Embedding(num_classes, ch * 16)
        self.classify = nn.Linear(ch * 16, num_classes)

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(images)
        score = self.adversarial(h).squeeze(1) + (self.embed(labels) * h).sum(1)
        return score, self.classify(h)


class ConditionalDCGAN(ConditionalGenerator):
    """Class-conditional DCGAN: one-hot input and class-conditional batch norm in the generator,
    a projection discriminator with an AC-GAN head.

    Trained with manual optimisation as in Lightning's GAN example: a discriminator step, then a
    generator step, per batch.

    Args:
        num_classes: classes to condition on (linked from the data set).
        channels: image channels (linked from the data set).
        image_size: image side, 4 * 2^k (linked from the data set).
        latent_dim: size of the noise vector.
        width: channels of the first discriminator layer / last generator layer.
        lr: Adam learning rate of both networks.
        beta1: Adam beta1 (0.5 as in DCGAN).
        aux_weight: weight of the auxiliary classification loss.
        ema_decay: samples come from an exponential moving average of the generator's weights
            with this decay per step (0 samples from the last iterate). Averaging out the last
            steps' oscillations makes class fidelity far less dependent on the seed.
        min_steps: the fewest optimizer steps of a fit (two per batch: discriminator and generator), so
            a small data set still gets the budget the epochs give the full one (``null``: epochs decide).
        max_steps: the most optimizer steps of a fit, so a later generation's larger training set (real +
            queue) does not lengthen it (``null``: epochs decide).
        cpu_precision: the arithmetic of a fit on a CPU: ``32`` (float32), ``bf16`` (bfloat16 autocast of the
            forward and backward passes; weights, optimizer and moving average stay float32) or ``auto``
            (bf16 where the CPU has bfloat16 instructions, AVX512-BF16 or AMX-BF16, float32 elsewhere, so
            results on other CPUs do not change). A bf16 fit also keeps the convolutions' weights and
            activations channels-last, the layout oneDNN's bf16 kernels run fastest in. Sampling is float32
            either way; a GPU fit follows the trainer's ``precision``.
    """

    ddp_find_unused_parameters = True

    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 3,
        image_size: int = 32,
        latent_dim: int = 64,
        width: int = 32,
        lr: float = 2e-4,
        beta1: float = 0.5,
        aux_weight: float = 2.0,
        ema_decay: float = 0.99,
        min_steps: int | None = None,
        max_steps: int | None = None,
        cpu_precision: Literal["32", "bf16", "auto"] = "32",
    ) -> None:
        super().__init__(num_classes, channels, image_size, min_steps=min_steps, max_steps=max_steps)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.cpu_bf16 = cpu_precision == "bf16" or (cpu_precision == "auto" and cpu_has_bf16())
        self.generator = _Generator(latent_dim, num_classes, channels, image_size, width)
        self.discriminator = _Discriminator(num_classes, channels, image_size, width)
        self.apply(_dcgan_init)
        for module in self.generator.modules():
            if isinstance(module, _ConditionalBatchNorm2d):
                module.reset_affine()
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

    @classmethod
    def image_size_problem(cls, size: int, init_args: Mapping[str, Any], flag: str) -> str | None:
        # Every upsampling doubles a 4x4 start, and the discriminator halves back to 4x4.
        if size < 16 or size & (size - 1):
            return f"{flag} must be 4 * 2^k >= 16 (16, 32, 64, 128, ...) for the generator {cls.__name__}, got {size}"
        return None

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.generator(z, F.one_hot(labels, self.num_classes).float())

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.hparams.ema_decay
        for ema, live in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            ema.lerp_(live, 1 - decay)

    @torch.no_grad()
    def on_train_end(self) -> None:
        """Re-estimate the averaged generator's batch-norm statistics for its own weights.

        The live generator's running statistics do not match the averaged weights (they shift the
        whole image, e.g. a coloured background), so they are recomputed with the averaged weights
        over seeded random batches, as a cumulative average.
        """
        norms = [m for m in self.generator_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        self.generator_ema.train()
        generator = torch.Generator().manual_seed(0)
        for _ in range(BN_RECALIBRATION_BATCHES):
            z = torch.randn(BN_RECALIBRATION_SIZE, self.hparams.latent_dim, generator=generator)
            labels = torch.randint(0, self.num_classes, (BN_RECALIBRATION_SIZE,), generator=generator)
            self.generator_ema(z.to(self.device), F.one_hot(labels, self.num_classes).float().to(self.device))
        self.generator_ema.eval()

    def _fits_in_bf16(self) -> bool:
        return self.cpu_bf16 and self.device.type == "cpu"

    def on_fit_start(self) -> None:
        if self._fits_in_bf16():
            self.to(memory_format=torch.channels_last)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        bf16 = self._fits_in_bf16()
        if bf16:
            images, labels, subgroups = batch
            batch = (images.contiguous(memory_format=torch.channels_last), labels, subgroups)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            self._adversarial_step(batch)
        self._update_ema()

    def _adversarial_step(self, batch: tuple[Tensor, Tensor, Tensor]) -> None:
        """A discriminator step, then a generator step, on one batch."""
        images, labels, _ = batch
        real = to_signed_unit(images)
        opt_g, opt_d = self.optimizers()
        z = torch.randn(len(real), self.hparams.latent_dim, device=self.device)
        fake_labels = torch.randint(0, self.num_classes, (len(real),), device=self.device)
        fake = self(z, fake_labels)

        self.toggle_optimizer(opt_d)
        real_score, real_logits = self.discriminator(real, labels)
        fake_score, fake_logits = self.discriminator(fake.detach(), fake_labels)
        adv_d = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        aux_d = F.cross_entropy(real_logits, labels) + F.cross_entropy(fake_logits, fake_labels)
        loss_d = adv_d + self.hparams.aux_weight * aux_d
        self.manual_backward(loss_d)
        opt_d.step()
        opt_d.zero_grad()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        fake_score, fake_logits = self.discriminator(fake, fake_labels)
        loss_g = F.softplus(-fake_score).mean() + self.hparams.aux_weight * F.cross_entropy(
            fake_logits, fake_labels
        )
        self.manual_backward(loss_g)
        opt_g.step()
        opt_g.zero_grad()
        self.untoggle_optimizer(opt_g)

        self.log_dict({"loss_d": loss_d, "loss_g": loss_g}, prog_bar=True, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        betas = (self.hparams.beta1, 0.999)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        return [opt_g, opt_d]

    @torch.no_grad()
    def sample(self, labels: Tensor, seed: int, batch_size: int = 256) -> Tensor:
        generator = torch.Generator().manual_seed(seed)
        out = []
        with evaluating(self):
            for chunk in labels.split(batch_size):
                z = torch.randn(len(chunk), self.hparams.latent_dim, generator=generator).to(self.device)
                onehot = F.one_hot(chunk.to(self.device), self.num_classes).float()
                out.append(to_uint8(self.generator_ema(z, onehot)).cpu())
        return (
            torch.cat(out)
            if out
            else torch.empty(0, self.channels, self.image_size, self.image_size, dtype=torch.uint8)
        )


def _dcgan_init(module: nn.Module) -> None:
    # DCGAN's N(0, 0.02) initialisation keeps early training stable.
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
