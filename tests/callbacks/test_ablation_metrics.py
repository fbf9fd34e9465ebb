"""AblationMetrics on a hand-built evaluation set whose predictions are known under every ablation."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from selfloop.callbacks.ablation_metrics import ABLATIONS, METRIC_KEYS, AblationMetrics
from selfloop.data.segmented import SegmentedImages
from selfloop.metrics.ablations import ablate_box_tile


class CenterPixel(L.LightningModule):
    """Predicts class 1 iff channel 0 of pixel (3, 3) is brighter than 200; gray (128) reads as 0."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))  # something to optimise in a fit

    def forward(self, images: Tensor) -> Tensor:
        hit = (images[:, 0, 3, 3] > 200).float()
        return torch.stack([1 - hit, hit], dim=1) + 0 * self.weight

    def training_step(self, batch, batch_idx):
        return (self.weight - 1) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def evaluation_set() -> SegmentedImages:
    """Five 8x8 images; per image: (clean, object_gray, box_gray, box_tile) correct?"""
    images = torch.zeros(5, 3, 8, 8, dtype=torch.uint8)
    masks = torch.zeros(5, 8, 8, dtype=torch.bool)
    # 0, label 1: the bright pixel is the object; its 1x1 box is tiled from (4, 3) below it (below wins
    #    ties), also bright. clean yes, object_gray no, box_gray no, box_tile yes
    images[0, :, 3, 3] = images[0, :, 4, 3] = 255
    masks[0, 3, 3] = True
    # 1, label 1: the bright pixel is context inside the object's box (an L on (2, 2), (2, 3), (3, 2):
    #    rows 2-3, cols 2-3); the box is tiled from the dark rows 4-5 below it.
    #    clean yes, object_gray yes, box_gray no, box_tile no
    images[1, :, 3, 3] = 255
    masks[1, 3, 2] = masks[1, 2, 3] = masks[1, 2, 2] = True
    # 2, label 0: dark centre, object far away. Correct under everything.
    masks[2, 0, 0] = True
    # 3, label 0: bright centre, no object at all (empty mask: ablations change nothing). Never correct.
    images[3, :, 3, 3] = 255
    # 4, label 1: the object is row 3 (full width); the box is tiled from row 4 (below wins the tie
    #    with above), bright at (4, 3). clean yes, object_gray no, box_gray no, box_tile yes
    images[4, :, 3, :] = 255
    images[4, :, 4, 3] = 255
    masks[4, 3, :] = True
    return SegmentedImages(images, torch.tensor([1, 1, 0, 0, 1]), masks)


EXPECTED = {
    "acc": 4 / 5,
    "acc_object_gray": 2 / 5,
    "acc_box_gray": 1 / 5,
    "acc_box_tile": 3 / 5,
    "drop_object_gray": 4 / 5 - 2 / 5,
    "drop_box_gray": 4 / 5 - 1 / 5,
    "drop_box_tile": 4 / 5 - 3 / 5,
}


def test_known_predictions_give_known_accuracies():
    result = AblationMetrics(evaluation_set(), record=lambda m: None, batch_size=2).evaluate(CenterPixel())
    assert set(result) == set(METRIC_KEYS) == set(EXPECTED)
    assert result == pytest.approx(EXPECTED)


def test_rank_slices_cover_every_image_once():
    callback = AblationMetrics(evaluation_set(), record=lambda m: None, batch_size=1)
    model = CenterPixel()
    shards = [callback.count(model, rank, 3) for rank in range(3)]
    assert [int(s[0]) for s in shards] == [2, 2, 1]
    assert torch.equal(sum(shards), callback.count(model))


def test_records_at_the_end_of_a_fit():
    recorded: list[dict] = []
    callback = AblationMetrics(evaluation_set(), record=recorded.append)
    loader = DataLoader(TensorDataset(torch.zeros(2, 1)), batch_size=2)
    trainer = L.Trainer(
        max_steps=1,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = CenterPixel()
    trainer.fit(model, loader)
    assert recorded == [callback.result]
    assert recorded[0] == pytest.approx(EXPECTED)
    assert model.training  # the callback restores the mode it found


def test_empty_evaluation_set_gives_nan():
    empty = SegmentedImages(
        torch.zeros(0, 3, 8, 8, dtype=torch.uint8),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, 8, 8, dtype=torch.bool),
    )
    result = AblationMetrics(empty, record=lambda m: None).evaluate(CenterPixel())
    assert all(v != v for v in result.values())


def test_box_tile_boxes_each_object_separately():
    # Two 1x1 objects far apart: each box is tiled on its own; the pixels between them, which one
    # box around both would cover, are left alone.
    images = torch.arange(64, dtype=torch.uint8).reshape(1, 1, 8, 8).expand(1, 3, 8, 8).contiguous()
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 1, 1] = masks[0, 5, 6] = True
    data = SegmentedImages(images, torch.tensor([0]), masks)
    out = ABLATIONS["box_tile"](data.images, data.masks, data.boxes)
    assert torch.equal(out, ablate_box_tile(images, masks))
    assert int((out != images).any(1).sum()) == 2
