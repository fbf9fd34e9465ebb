"""Batches gathered on the training device from an in-memory image set, in a DataLoader's exact order.

For small images (28-32 px) the whole uint8 train set (real + queue: at most a few hundred MB) fits on
a GPU many times over, so a batch can be an index gather there instead of a CPU gather plus a
host-to-device copy per step (airbench's recipe). :class:`DeviceBatches` is the data module's ``train_dataloader`` /
``val_dataloader`` with ``device_batches: true``; it yields, bit for bit, the batches that

    DataLoader(data, batch_size, shuffle, generator=generator, drop_last=drop_last,
               collate_fn=collate_batch, num_workers=0)

yields, and draws the same random numbers at the same moments, so a run's global RNG stream (dropout
masks) and the loader generator's state evolve exactly as with the DataLoader. That DataLoader:

* draws a "base seed" (one int64) from ``generator`` (the global RNG when ``None``) every time an
  iterator is created, before any index is drawn (here: with the first batch, see ``__iter__``);
* on the first batch, draws ``torch.randperm(n, generator=generator)`` (shuffle; without a generator
  a fresh one seeded from the global RNG), or uses ``0 .. n-1``;
* draws a second, unused ``randperm`` when the sampler is exhausted: before the last partial batch is
  returned, or, when the last batch is full (or ``drop_last``), only if the consumer asks for one more
  batch. Lightning stops at ``len(loader)`` without asking, so this matters for the next epoch's order.

The permutation is drawn on the CPU generator (as the DataLoader does), moved to the device once per
epoch, and every batch is then ``images[index]`` on the device: no per-batch work on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from selfloop.data.image_set import ImageSet, collate_batch

__all__ = ["DeviceBatches"]

Batch = tuple[Tensor, Tensor, Tensor]


class DeviceBatches:
    """An iterable of ``(images, labels, subgroups)`` batches gathered on ``device``.

    Args:
        data: the image set; copied to ``device`` once, here.
        batch_size: images per batch.
        shuffle: a new random order every epoch (else the stored order).
        generator: the CPU generator the order is drawn from (the DataLoader's ``generator``); ``None``
            draws from the global RNG, as the DataLoader does.
        device: where the data lives and the batches are gathered.
        drop_last: leave out the last batch when it is partial.

    Raises:
        ValueError: ``batch_size`` below 1, an empty set with ``shuffle``, or a non-CPU generator.

    Example::

        generator = torch.Generator().manual_seed(0)
        batches = DeviceBatches(train_set, 64, shuffle=True, generator=generator, device="cuda")
        for images, labels, subgroups in batches:  # uint8 / int64 tensors already on the GPU
            ...
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle and len(data) == 0:
            # The DataLoader's RandomSampler refuses an empty set the same way.
            raise ValueError("cannot shuffle an empty image set (num_samples should be a positive integer)")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                f"the order is drawn on a CPU generator, as the DataLoader draws it; got one on {generator.device}"
            )
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last
        self.num_samples = len(data)
        # One copy per fit; ``non_blocking`` is pointless for pageable memory, so plain ``to``.
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.subgroups = data.subgroups.to(self.device)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        # The DataLoader iterator's base seed. The DataLoader draws it when the iterator is created;
        # here it is drawn with the first batch, because Lightning calls ``iter()`` once on every
        # iterable that is not a DataLoader only to check that it is one, and throws the iterator away.
        # Nothing draws random numbers between creating an iterator and taking its first batch in
        # Lightning's loops, so the stream is the same.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        n, size = self.num_samples, self.batch_size
        generator = self._order_generator() if self.shuffle else None
        if generator is not None:
            order = torch.randperm(n, generator=generator).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        full, rest = divmod(n, size)
        for start in range(0, full * size, size):
            yield self._gather(order[start : start + size])
        if rest and not self.drop_last:
            # Filling the partial batch exhausts the sampler, which draws its (unused) second
            # permutation before the batch is returned.
            self._exhaust(generator)
            yield self._gather(order[full * size :])
        else:
            # The sampler is exhausted only when one more batch is asked for: code after the last
            # ``yield`` runs just then.
            self._exhaust(generator)

    def _order_generator(self) -> torch.Generator:
        if self.generator is not None:
            return self.generator
        # RandomSampler without a generator seeds a private one from the global RNG.
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        return torch.Generator().manual_seed(seed)

    def _exhaust(self, generator: torch.Generator | None) -> None:
        if generator is not None:
            torch.randperm(self.num_samples, generator=generator)

    def _gather(self, index: Tensor) -> Batch:
        return collate_batch((self.images[index], self.labels[index], self.subgroups[index]))
