"""The downstream classifier f_n: a backbone by name, trained with cross-entropy."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from selfloop.classifiers.backbones import Arch, build_backbone
from selfloop.core.eval_mode import evaluating


class ImageClassifier(L.LightningModule):
    """A classifier of the panel, trained on real + queue and evaluated for bias.

    Batches hold uint8 images; ``preprocess`` converts them per batch to the size and normalisation
    the backbone expects (native size for networks from scratch, 224 px and ImageNet statistics for
    pretrained ones), so data stays compact in memory and on the device.

    Args:
        arch: backbone name; with a panel (``--loop.archs``) the loop sets it per phase.
        num_classes: classes (linked from the data set).
        in_channels: image channels (linked from the data set).
        image_size: image side (linked from the data set).
        pretrained: start from torchvision's / timm's ImageNet weights (fine-tuning).
        lr: Adam learning rate. The paper states 1e-1, which makes Adam diverge on every backbone
            here; 1e-3 (Adam's default) is the working value.
        weight_decay: Adam weight decay.
        dropout: dropout probability of the head; MC-dropout scoring reuses it.
        channels_last: keep activations in channels-last memory format, which tensor cores prefer;
            ``None`` turns it on when the model runs on a GPU. Mixed precision (bf16 autocast) is
            the Trainer's: ``--trainer.precision bf16-mixed``.
    """

    def __init__(
        self,
        arch: Arch = "lenet",
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        pretrained: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        dropout: float = 0.5,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Pretrained weights expect 3 channels: grayscale inputs are repeated.
        self.repeat_channels = 3 if pretrained and in_channels == 1 else 1
        channels = in_channels * self.repeat_channels
        self.net, spec = build_backbone(
            arch,
            num_classes,
            in_channels=channels,
            image_size=image_size,
            pretrained=pretrained,
            dropout=dropout,
        )
        self.input_size = spec.size
        self.register_buffer("mean", _as_channel_tensor(spec.mean, channels), persistent=False)
        self.register_buffer("std", _as_channel_tensor(spec.std, channels), persistent=False)

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 ``(N, C, H, W)`` -> normalised float at the backbone's input size."""
        x = images.float().div_(255)
        if self.repeat_channels > 1:
            x = x.repeat(1, self.repeat_channels, 1, 1)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last() else x

    def _channels_last(self) -> bool:
        wanted = self.hparams.channels_last
        return self.device.type == "cuda" if wanted is None else wanted

    def on_fit_start(self) -> None:
        if self._channels_last():
            self.net.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(self.preprocess(images))

    def on_train_epoch_start(self) -> None:
        # Loss sum, correct count and sample count of the epoch, kept on the device: logging once per
        # epoch instead of per step saves ~0.7 ms per step (Lightning's logging machinery).
        self._epoch_sums = torch.zeros(3, device=self.device)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels, _ = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            correct = (logits.argmax(1) == labels).sum()
            self._epoch_sums += torch.stack(
                [loss.detach() * len(labels), correct, torch.tensor(len(labels), device=loss.device)]
            )
        return loss

    def on_train_epoch_end(self) -> None:
        loss_sum, correct, count = self._epoch_sums
        self.log_dict(
            {"train_loss": loss_sum / count, "train_acc": correct / count}, prog_bar=True, sync_dist=True
        )

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        images, labels, _ = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        self.log_dict({"val_loss": loss, "val_acc": acc}, prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    @torch.no_grad()
    def predict_labels(self, images: Tensor, batch_size: int = 512) -> Tensor:
        """Predicted classes of uint8 images (eval mode), on the CPU."""
        with evaluating(self):
            out = [self(chunk.to(self.device)).argmax(1).cpu() for chunk in images.split(batch_size)]
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long)

    @torch.no_grad()
    def mc_dropout_probs(self, images: Tensor, passes: int, seed: int, batch_size: int = 512) -> Tensor:
        """Softmax probabilities averaged over ``passes`` stochastic forward passes with dropout on.

        Batch norm stays in eval mode: only dropout is sampled (Gal & Ghahramani, 2016).

        Returns:
            float ``(N, num_classes)`` on the CPU.
        """
        fork_devices = [self.device] if self.device.type == "cuda" else []
        with evaluating(self), torch.random.fork_rng(devices=fork_devices):
            for module in self.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.train()
            torch.manual_seed(seed)
            out = []
            for chunk in images.split(batch_size):
                chunk = chunk.to(self.device)
                probs = sum(F.softmax(self(chunk), dim=1) for _ in range(max(passes, 1)))
                out.append((probs / max(passes, 1)).cpu())
        return torch.cat(out) if out else torch.empty(0, self.hparams.num_classes)


def _as_channel_tensor(values: tuple[float, ...], channels: int) -> Tensor:
    t = torch.as_tensor(values, dtype=torch.float32)
    if t.numel() == 1:
        t = t.expand(channels)
    return t.view(1, channels, 1, 1).clone()
