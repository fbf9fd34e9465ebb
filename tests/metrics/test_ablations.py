"""The Hard ImageNet ablations, checked pixel for pixel against hand-written expectations."""

from __future__ import annotations

import pytest
import torch

from selfloop.metrics.ablations import (
    SegmentedImages,
    ablate_box_gray,
    ablate_box_tile,
    ablate_object_gray,
    boxes_from_masks,
)

# A 5 x 6 image whose pixel (y, x) holds 10 * y + x.
GRID = [
    [0, 1, 2, 3, 4, 5],
    [10, 11, 12, 13, 14, 15],
    [20, 21, 22, 23, 24, 25],
    [30, 31, 32, 33, 34, 35],
    [40, 41, 42, 43, 44, 45],
]


def image(rows=GRID, dtype=torch.uint8) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype)[None, None]


def mask_of(pixels: list[tuple[int, int]], height: int = 5, width: int = 6) -> torch.Tensor:
    mask = torch.zeros(1, height, width, dtype=torch.bool)
    for y, x in pixels:
        mask[0, y, x] = True
    return mask


def test_boxes_from_masks_are_inclusive_and_empty_masks_get_minus_ones():
    masks = torch.cat(
        [mask_of([(1, 1), (1, 2), (2, 2)]), mask_of([(4, 5)]), mask_of([]), mask_of([(0, 0), (4, 5)])]
    )
    expected = torch.tensor([[1, 2, 1, 2], [4, 4, 5, 5], [-1, -1, -1, -1], [0, 4, 0, 5]])
    assert torch.equal(boxes_from_masks(masks), expected)
    assert torch.equal(boxes_from_masks(masks[:, None].to(torch.uint8) * 255), expected)


def test_object_gray_sets_only_object_pixels_to_128():
    out = ablate_object_gray(image(), mask_of([(1, 1), (1, 2), (2, 2)]))
    expected = image(
        [
            [0, 1, 2, 3, 4, 5],
            [10, 128, 128, 13, 14, 15],
            [20, 21, 128, 23, 24, 25],
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    assert out.dtype == torch.uint8 and torch.equal(out, expected)


def test_object_gray_on_float_images_uses_one_half_in_every_channel():
    images = torch.zeros(1, 3, 2, 2)
    out = ablate_object_gray(images, torch.tensor([[[True, False], [False, False]]]))
    expected = torch.zeros(1, 3, 2, 2)
    expected[0, :, 0, 0] = 0.5
    assert torch.equal(out, expected)


def test_box_gray_fills_the_inclusive_box():
    boxes = torch.tensor([[1, 2, 1, 3]])
    expected = image(
        [
            [0, 1, 2, 3, 4, 5],
            [10, 128, 128, 128, 14, 15],
            [20, 128, 128, 128, 24, 25],
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    assert torch.equal(ablate_box_gray(image(), boxes), expected)


def test_tile_copies_the_region_to_the_right_which_wins_ties():
    # 2x2 box at rows 1-2, cols 1-2: right (2 cols) and below (2 rows) both have area 4; right wins.
    expected = image(
        [
            [0, 1, 2, 3, 4, 5],
            [10, 13, 14, 13, 14, 15],
            [20, 23, 24, 23, 24, 25],
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    assert torch.equal(ablate_box_tile(image(), torch.tensor([[1, 2, 1, 2]])), expected)


def test_tile_copies_the_region_to_the_left_at_the_right_border():
    # Box rows 1-2, cols 4-5: nothing to the right; left (area 4) beats the tie with below.
    expected = image(
        [
            [0, 1, 2, 3, 4, 5],
            [10, 11, 12, 13, 12, 13],
            [20, 21, 22, 23, 22, 23],
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    assert torch.equal(ablate_box_tile(image(), torch.tensor([[1, 2, 4, 5]])), expected)


def test_tile_repeats_a_clipped_strip_from_above():
    # Full-width box on rows 2-4: only the 2 rows above exist; row y takes row 1 - (4 - y) % 2.
    expected = image(
        [
            [0, 1, 2, 3, 4, 5],
            [10, 11, 12, 13, 14, 15],
            [10, 11, 12, 13, 14, 15],
            [0, 1, 2, 3, 4, 5],
            [10, 11, 12, 13, 14, 15],
        ]
    )
    assert torch.equal(ablate_box_tile(image(), torch.tensor([[2, 4, 0, 5]])), expected)


def test_tile_repeats_a_clipped_strip_from_below():
    # Full-width box on rows 0-2: the 2 rows below exist; row y takes row 3 + y % 2.
    expected = image(
        [
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
            [30, 31, 32, 33, 34, 35],
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    assert torch.equal(ablate_box_tile(image(), torch.tensor([[0, 2, 0, 5]])), expected)


def test_tile_picks_the_largest_clipped_region():
    # Box rows 0-3, cols 1-2 (h 4, w 2): right 2 cols x 4 = 8 beats left 1 col x 4 = 4 and below 1 row x 2.
    expected = image(
        [
            [0, 3, 4, 3, 4, 5],
            [10, 13, 14, 13, 14, 15],
            [20, 23, 24, 23, 24, 25],
            [30, 33, 34, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    assert torch.equal(ablate_box_tile(image(), torch.tensor([[0, 3, 1, 2]])), expected)


def test_tile_of_a_whole_image_box_is_gray_and_empty_boxes_change_nothing():
    images = torch.cat([image(), image()])
    boxes = torch.tensor([[0, 4, 0, 5], [-1, -1, -1, -1]])
    out = ablate_box_tile(images, boxes)
    assert torch.equal(out[0], torch.full((1, 5, 6), 128, dtype=torch.uint8))
    assert torch.equal(out[1], images[1])
    assert torch.equal(ablate_box_gray(images, boxes)[1], images[1])


def test_ablations_are_batched_per_image_and_per_channel():
    rgb = torch.stack([torch.tensor(GRID), torch.tensor(GRID) + 100, torch.tensor(GRID) + 200]).to(
        torch.uint8
    )
    images = torch.stack([rgb, rgb.flip(2)])
    boxes = torch.tensor([[1, 2, 1, 2], [1, 2, 4, 5]])
    out = ablate_box_tile(images, boxes)
    for i in range(2):
        for c in range(3):
            alone = ablate_box_tile(images[i : i + 1, c : c + 1], boxes[i : i + 1])
            assert torch.equal(out[i : i + 1, c : c + 1], alone)
    assert torch.equal(out[0, 1, 1], torch.tensor([110, 113, 114, 113, 114, 115], dtype=torch.uint8))


def test_inputs_are_not_modified():
    images = image()
    before = images.clone()
    ablate_object_gray(images, mask_of([(0, 0)]))
    ablate_box_gray(images, torch.tensor([[0, 1, 0, 1]]))
    ablate_box_tile(images, torch.tensor([[0, 1, 0, 1]]))
    assert torch.equal(images, before)


def test_shape_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"boxes must be \(1, 4\)"):
        ablate_box_gray(image(), torch.tensor([1, 2, 1, 2]))
    with pytest.raises(ValueError, match="do not match images"):
        ablate_object_gray(image(), torch.zeros(1, 4, 6, dtype=torch.bool))


def test_segmented_images_derive_boxes_from_masks():
    masks = mask_of([(1, 1), (2, 3)])
    data = SegmentedImages(image(), torch.tensor([0]), masks)
    assert torch.equal(data.boxes, torch.tensor([[1, 2, 1, 3]]))
    assert len(data) == 1
