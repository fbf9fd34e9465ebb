"""The Hard ImageNet ablations, checked pixel for pixel against hand-written expectations and, for
the tile ablation, against the release's own algorithm (transcribed below with its slips fixed)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy
import scipy.ndimage
import torch

from selfloop.data.segmented import SegmentedImages, boxes_from_masks
from selfloop.metrics.ablations import ablate_box_gray, ablate_box_tile, ablate_object_gray, object_labels

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


def test_tile_copies_the_region_below_which_wins_ties():
    # 2x2 object at rows 1-2, cols 1-2: below (2 rows) and right (2 cols) both have area 4; below wins,
    # as in the release's order (below, above, right, left).
    expected = image(
        [
            [0, 1, 2, 3, 4, 5],
            [10, 31, 32, 13, 14, 15],
            [20, 41, 42, 23, 24, 25],
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    square = mask_of([(1, 1), (1, 2), (2, 1), (2, 2)])
    assert torch.equal(ablate_box_tile(image(), square), expected)


def test_tile_boxes_the_object_not_just_its_pixels():
    # Object (1, 1), (2, 2) and (1, 2): its inclusive box is rows 1-2, cols 1-2, as for the square.
    assert torch.equal(
        ablate_box_tile(image(), mask_of([(1, 1), (1, 2), (2, 2)])),
        ablate_box_tile(image(), mask_of([(1, 1), (1, 2), (2, 1), (2, 2)])),
    )


def test_tile_copies_the_region_to_the_left_at_the_right_border():
    # Box rows 1-3, cols 4-5 (h 3, w 2): nothing to the right; left 2 cols x 3 beats 1 row x 2 below/above.
    expected = image(
        [
            [0, 1, 2, 3, 4, 5],
            [10, 11, 12, 13, 12, 13],
            [20, 21, 22, 23, 22, 23],
            [30, 31, 32, 33, 32, 33],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    masks = mask_of([(y, x) for y in (1, 2, 3) for x in (4, 5)])
    assert torch.equal(ablate_box_tile(image(), masks), expected)


def test_tile_repeats_a_clipped_strip_from_above():
    # Full-width object on rows 2-4: only the 2 rows above exist; row y takes row 1 - (4 - y) % 2.
    expected = image(
        [
            [0, 1, 2, 3, 4, 5],
            [10, 11, 12, 13, 14, 15],
            [10, 11, 12, 13, 14, 15],
            [0, 1, 2, 3, 4, 5],
            [10, 11, 12, 13, 14, 15],
        ]
    )
    masks = mask_of([(y, x) for y in (2, 3, 4) for x in range(6)])
    assert torch.equal(ablate_box_tile(image(), masks), expected)


def test_tile_repeats_a_clipped_strip_from_below():
    # Full-width object on rows 0-2: the 2 rows below exist; row y takes row 3 + y % 2.
    expected = image(
        [
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
            [30, 31, 32, 33, 34, 35],
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    masks = mask_of([(y, x) for y in (0, 1, 2) for x in range(6)])
    assert torch.equal(ablate_box_tile(image(), masks), expected)


def test_tile_picks_the_largest_clipped_region():
    # Box rows 0-3, cols 1-2 (h 4, w 2): right 2 cols x 4 = 8 beats left 1 col x 4 and below 1 row x 2.
    expected = image(
        [
            [0, 3, 4, 3, 4, 5],
            [10, 13, 14, 13, 14, 15],
            [20, 23, 24, 23, 24, 25],
            [30, 33, 34, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    masks = mask_of([(y, x) for y in range(4) for x in (1, 2)])
    assert torch.equal(ablate_box_tile(image(), masks), expected)


def test_tile_is_trimmed_at_other_objects_and_each_object_gets_its_own_box():
    # Object A (label 1): rows 0-2, cols 0-1. Alone, its right tile (cols 2-3, area 6) would win; the
    # object B at (1, 3) trims it to col 2 (area 3), so below (rows 3-4, area 4) wins: row y takes
    # row 3 + y % 2. B (label 2) is a 1x1 box filled from below, (2, 3). The pixels between the two
    # boxes, which one box around both objects would have replaced, keep their values.
    a = [(y, x) for y in range(3) for x in (0, 1)]
    expected = image(
        [
            [30, 31, 2, 3, 4, 5],
            [40, 41, 12, 23, 14, 15],
            [30, 31, 22, 23, 24, 25],
            [30, 31, 32, 33, 34, 35],
            [40, 41, 42, 43, 44, 45],
        ]
    )
    assert torch.equal(ablate_box_tile(image(), mask_of([*a, (1, 3)])), expected)
    alone = ablate_box_tile(image(), mask_of(a))
    assert alone[0, 0, :3, :2].tolist() == [[2, 3], [12, 13], [22, 23]]


def test_diagonal_neighbours_are_separate_objects():
    # 4-connectivity, scipy.ndimage.label's default: (1, 1) and (2, 2) are two 1x1 boxes, each
    # filled from the pixel below it; (1, 2) and (2, 1) keep their values.
    out = ablate_box_tile(image(), mask_of([(1, 1), (2, 2)]))
    assert out[0, 0, 1:3, 1:3].tolist() == [[21, 12], [21, 32]]


def test_tile_of_a_whole_image_object_is_gray_and_empty_masks_change_nothing():
    images = torch.cat([image(), image()])
    masks = torch.cat([mask_of([(y, x) for y in range(5) for x in range(6)]), mask_of([])])
    out = ablate_box_tile(images, masks)
    assert torch.equal(out[0], torch.full((1, 5, 6), 128, dtype=torch.uint8))
    assert torch.equal(out[1], images[1])
    assert torch.equal(ablate_box_gray(images, boxes_from_masks(masks))[1], images[1])


def test_tile_rejects_boxes_in_place_of_masks():
    with pytest.raises(ValueError, match="takes the object masks"):
        ablate_box_tile(image(), torch.tensor([[1, 2, 1, 2]]))


def test_object_labels_number_each_image_like_scipy_label():
    masks = torch.cat(
        [mask_of([(0, 5), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2), (3, 5)]), mask_of([]), mask_of([(4, 4)])]
    )
    labels = object_labels(masks)
    for i in range(3):
        expected, _ = scipy.ndimage.label(masks[i].numpy())
        assert labels[i].tolist() == expected.tolist()
    assert labels[0, 0, 5] == 1 and labels[0, 1, 0] == 2 and labels[0, 3, 5] == 3


def test_ablations_are_batched_per_image_and_per_channel():
    rgb = torch.stack([torch.tensor(GRID), torch.tensor(GRID) + 100, torch.tensor(GRID) + 200]).to(
        torch.uint8
    )
    images = torch.stack([rgb, rgb.flip(2), rgb])
    masks = torch.cat([mask_of([(1, 1), (1, 2)]), mask_of([(1, 4), (2, 5), (4, 0)]), mask_of([])])
    out = ablate_box_tile(images, masks)
    for i in range(3):
        for c in range(3):
            alone = ablate_box_tile(images[i : i + 1, c : c + 1], masks[i : i + 1])
            assert torch.equal(out[i : i + 1, c : c + 1], alone)
    # Image 0, green: the 1x2 box at row 1, cols 1-2 is filled from below, row 2.
    assert torch.equal(out[0, 1, 1], torch.tensor([110, 121, 122, 113, 114, 115], dtype=torch.uint8))


# --- Reference: the release's tile ablation -------------------------------------------------------
#
# The functions below transcribe get_corners, trim_tile, repeat_tile_to_fill_bbox,
# largest_adjacent_tile and tile from ablations.py of the Hard ImageNet release (Moayeri et al., 2022,
# github.com/mmoayeri/HardImageNet, commit 7b53b4b), in its own style (batch size 1, x counting rows
# and y columns as get_corners returns them, tiles cut and repeated in its (y, x) layout), with two
# fixes:
#
# 1. Inclusive boxes. The release's get_bbox marks [x_min:x_max, y_min:y_max] with the maxima of
#    get_corners as exclusive ends, and largest_adjacent_tile / tile take get_corners of that box
#    again: every box loses its last row and column (one-pixel-thick objects are skipped). Here
#    get_corners returns max + 1 once and the corners are passed on.
# 2. Rows and columns in trim_tile. The release slices the image and mask as [:, y1:y2, x1:x2]
#    although x counts rows, so the tile comes from the transposed position, and its per-line object
#    sums mix the two axes. Here trim_tile slices [:, x1:x2, y1:y2], sums over the axis along the
#    box's side, and counts the trimmed depth from the box outwards for all four sides (the release
#    also takes the depth from the far end for 'right'/'up' and sizes 'left'/'down' tiles by the part
#    cut off); the tile is handed to repeat_tile_to_fill_bbox in the (y, x) layout it was written for.
#
# As in the release, a tile-less object (all four sizes 0) divides by zero; the cases avoid it.


def get_corners(arr):
    on_pixels = np.where(arr != 0)
    x_max, y_max = [np.max(on_pixels[i]) + 1 for i in [0, 1]]  # fix 1: exclusive ends, once
    x_min, y_min = [np.min(on_pixels[i]) for i in [0, 1]]
    return x_min, x_max, y_min, y_max


def trim_tile(img, mask, x1, x2, y1, y2, dir):
    _, h, w = img.shape
    x1, y1 = [max(a, 0) for a in [x1, y1]]
    x2, y2 = [min(a, d) for a, d in zip([x2, y2], [h, w], strict=True)]
    if mask[:, x1:x2, y1:y2].sum() == 0:  # fix 2: [x, y] throughout
        out = img[:, x1:x2, y1:y2]
        size = (x2 - x1) * (y2 - y1)
    else:
        # find first instance of other object, moving away from the bbox
        if dir == "left":  # rows above the bbox, which lies at x2
            is_there_obj_by_row = mask[0, x1:x2, y1:y2].sum(1)
            sum_towards_box = [sum(is_there_obj_by_row[i:]) for i in range(x2 - x1 + 1)]
            furthest_we_can_go = x2 - x1 - sum_towards_box.index(0)
            out = img[:, (x2 - furthest_we_can_go) : x2, y1:y2]
            size = furthest_we_can_go * (y2 - y1)
        elif dir == "right":  # rows below the bbox, which lies at x1
            is_there_obj_by_row = mask[0, x1:x2, y1:y2].sum(1)
            sum_from_box = [sum(is_there_obj_by_row[:i]) for i in range(x2 - x1, -1, -1)]
            furthest_we_can_go = x2 - x1 - sum_from_box.index(0)
            out = img[:, x1 : (x1 + furthest_we_can_go), y1:y2]
            size = furthest_we_can_go * (y2 - y1)
        elif dir == "up":  # columns right of the bbox, which lies at y1
            is_there_obj_by_col = mask[0, x1:x2, y1:y2].sum(0)
            sum_from_box = [sum(is_there_obj_by_col[:i]) for i in range(y2 - y1, -1, -1)]
            furthest_we_can_go = y2 - y1 - sum_from_box.index(0)
            out = img[:, x1:x2, y1 : (y1 + furthest_we_can_go)]
            size = (x2 - x1) * furthest_we_can_go
        elif dir == "down":  # columns left of the bbox, which lies at y2
            is_there_obj_by_col = mask[0, x1:x2, y1:y2].sum(0)
            sum_towards_box = [sum(is_there_obj_by_col[i:]) for i in range(y2 - y1 + 1)]
            furthest_we_can_go = y2 - y1 - sum_towards_box.index(0)
            out = img[:, x1:x2, (y2 - furthest_we_can_go) : y2]
            size = (x2 - x1) * furthest_we_can_go

    return out.swapaxes(1, 2), int(size)  # fix 2: the (y, x) layout of repeat_tile_to_fill_bbox


def repeat_tile_to_fill_bbox(tile, bbox_w, bbox_h, dir):  # verbatim
    out = torch.zeros(3, bbox_h, bbox_w)

    _, tile_h, tile_w = tile.shape
    if dir == "right":
        num_tile_copies = bbox_w // tile_w
        for i in range(num_tile_copies):
            out[:, :, i * tile_w : min(bbox_w, (i + 1) * tile_w)] = tile
        if bbox_w % tile_w != 0:
            out[:, :, (tile_w * num_tile_copies) :] = tile[:, :, : (bbox_w % tile_w)]
    elif dir == "left":
        num_tile_copies = bbox_w // tile_w
        for i in range(num_tile_copies):
            out[:, :, max(0, bbox_w - (i + 1) * tile_w) : (bbox_w - i * tile_w)] = tile
        if bbox_w % tile_w != 0:
            out[:, :, : (bbox_w % tile_w)] = tile[:, :, -1 * (bbox_w % tile_w) :]
    if dir == "up":
        num_tile_copies = bbox_h // tile_h
        for i in range(num_tile_copies):
            out[:, i * tile_h : min(bbox_h, (i + 1) * tile_h), :] = tile
        if bbox_h % tile_h != 0:
            out[:, (tile_h * num_tile_copies) :, :] = tile[:, : (bbox_h % tile_h), :]
    elif dir == "down":
        num_tile_copies = bbox_h // tile_h
        for i in range(num_tile_copies):
            out[:, max(0, bbox_h - (i + 1) * tile_h) : (bbox_h - i * tile_h), :] = tile
        if bbox_h % tile_h != 0:
            out[:, : (bbox_h % tile_h), :] = tile[:, -1 * (bbox_h % tile_h) :, :]
    return out


def largest_adjacent_tile(img, mask, corners):
    x_min, x_max, y_min, y_max = corners  # fix 1: the corners of the object, not of a shortened box
    right_tile, size_r = trim_tile(img, mask, x_max, 2 * x_max - x_min, y_min, y_max, dir="right")
    left_tile, size_l = trim_tile(img, mask, 2 * x_min - x_max, x_min, y_min, y_max, dir="left")
    up_tile, size_u = trim_tile(img, mask, x_min, x_max, y_max, 2 * y_max - y_min, dir="up")
    down_tile, size_d = trim_tile(img, mask, x_min, x_max, 2 * y_min - y_max, y_min, dir="down")

    max_size_ind = np.argmax([size_r, size_l, size_u, size_d])
    biggest_tile = [right_tile, left_tile, up_tile, down_tile][max_size_ind]

    dirs = ["right", "left", "up", "down"]
    out = repeat_tile_to_fill_bbox(biggest_tile, (x_max - x_min), (y_max - y_min), dirs[max_size_ind])
    return out


def release_tile(img, mask):
    """The release's ``tile(img, mask)``: img (1, 3, H, W) float, mask (1, 1, H, W); in place."""
    labels, num_features = scipy.ndimage.label(mask[0, 0].numpy())
    for j in range(1, 1 + num_features):
        labels2 = labels.copy()
        labels2[labels2 != j] = 0
        if labels2.sum() > 0:
            corners = get_corners(labels2)
            tile = largest_adjacent_tile(img[0], mask[0], corners)
            x_min, x_max, y_min, y_max = corners
            img[:, :, x_min:x_max, y_min:y_max] = tile.swapaxes(1, 2)
    return img


def noise(height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, height, width), generator=generator, dtype=torch.uint8)


def rectangles(height: int, width: int, *boxes: tuple[int, int, int, int]) -> torch.Tensor:
    """(1, H, W) mask, true on the union of inclusive (ymin, ymax, xmin, xmax) rectangles."""
    mask = torch.zeros(1, height, width, dtype=torch.bool)
    for ymin, ymax, xmin, xmax in boxes:
        mask[0, ymin : ymax + 1, xmin : xmax + 1] = True
    return mask


def changed_pixels(before: torch.Tensor, after: torch.Tensor) -> int:
    return int((before != after).any(1).sum())


def check_against_release(images: torch.Tensor, masks: torch.Tensor) -> int:
    """Pixel-for-pixel equality with the reference, uint8 and float; the number of changed pixels."""
    ours = ablate_box_tile(images, masks)
    floats = images.float() / 255
    reference = release_tile(floats.clone(), masks[:, None].float())
    assert torch.equal(ours.float() / 255, reference)
    assert torch.equal(ablate_box_tile(floats, masks), reference)
    assert changed_pixels(images, ours) == changed_pixels(floats, reference)
    return changed_pixels(images, ours)


# An irregular object: the rectangle rows 3-10, cols 5-8 with one pixel or strip beyond each side,
# so that its box is rows 2-11, cols 4-9 (10 x 6).
OBJECT_A = [(3, 10, 5, 8), (2, 2, 6, 6), (11, 11, 7, 7), (6, 6, 4, 4), (5, 7, 9, 9)]


def test_one_object_matches_the_release():
    # Box rows 2-11, cols 4-9 of 16 x 32: below 4 rows x 6, above 2 x 6, left 4 cols x 10, right
    # 6 cols x 10 = 60 wins; every box pixel changes.
    assert check_against_release(noise(16, 32), rectangles(16, 32, *OBJECT_A)) == 60


def test_two_objects_match_the_release_and_change_only_their_own_boxes():
    # B, rows 5-7 x cols 13-16 less a corner, trims A's right tile to cols 10-12 (3 x 10 = 30), so
    # A's left tile (4 x 10 = 40) wins; B's box (3 x 4) takes the rows below it. 60 + 12 pixels
    # change, where one box around both objects (rows 2-11, cols 4-16) would change 130.
    images = noise(16, 32, seed=1)
    masks = rectangles(16, 32, *OBJECT_A, (5, 7, 13, 15), (6, 7, 16, 16))
    assert check_against_release(images, masks) == 72
    out = ablate_box_tile(images, masks)
    assert torch.equal(out[0, :, 2:12, 4:10], images[0, :, 2:12, 0:4].repeat(1, 1, 2)[:, :, 2:])
    assert torch.equal(out[0, :, 5:8, 13:17], images[0, :, 8:11, 13:17])
    assert torch.equal(out[0, :, :, 10:13], images[0, :, :, 10:13])


def test_objects_at_the_border_match_the_release():
    # Top-left corner (rows 0-3, cols 0-2), right edge (rows 6-12, cols 27-31), bottom edge
    # (rows 13-15, cols 8-20): tiles clipped at the image border and trimmed at each other.
    masks = rectangles(16, 32, (0, 3, 0, 1), (0, 1, 2, 2), (6, 12, 29, 31), (8, 9, 27, 28), (13, 15, 8, 20))
    assert check_against_release(noise(16, 32, seed=2), masks) == 4 * 3 + 7 * 5 + 3 * 13


def test_later_objects_read_the_image_as_ablated_so_far():
    # A (label 1), an L: col 2 rows 1-7 and row 7 cols 2-7; its box rows 1-7, cols 2-7 takes rows
    # 8-11 below it (row y from 8 + (y - 1) % 4). B (label 2), rows 1-2 x cols 9-10: C at row 4 trims
    # its tile below to 1 row, the border clips above and right, so the left tile, cols 7-8, wins.
    # Col 7 lies in A's box: B's col 9 shows A's fill there (rows 8-9 of col 7), as in the release.
    images = noise(12, 12, seed=3)
    masks = rectangles(12, 12, (1, 7, 2, 2), (7, 7, 2, 7), (1, 2, 9, 10), (4, 4, 9, 10))
    check_against_release(images, masks)
    out = ablate_box_tile(images, masks)
    assert torch.equal(out[0, :, 1:3, 9], images[0, :, 8:10, 7])
    assert torch.equal(out[0, :, 1:3, 10], images[0, :, 1:3, 8])


@pytest.mark.parametrize("seed", range(8))
def test_random_rectangles_match_the_release(seed):
    # Overlapping boxes included: later objects read tiles from the image as ablated so far.
    generator = torch.Generator().manual_seed(seed)
    corners = torch.randint(0, 20, (4, 2), generator=generator)
    sizes = torch.randint(1, 7, (4, 2), generator=generator)
    boxes = [
        (int(y), min(int(y + h), 19), int(x), min(int(x + w), 23))
        for (y, x), (h, w) in zip(corners, sizes, strict=True)
    ]
    check_against_release(noise(20, 24, seed), rectangles(20, 24, *boxes))


def test_batch_equals_one_image_at_a_time():
    masks = torch.cat(
        [
            rectangles(16, 32, *OBJECT_A),
            rectangles(16, 32, *OBJECT_A, (5, 7, 13, 15), (6, 7, 16, 16)),
            rectangles(16, 32),
            rectangles(16, 32, (0, 3, 0, 1), (0, 1, 2, 2), (6, 12, 29, 31), (13, 15, 8, 20)),
        ]
    )
    images = torch.cat([noise(16, 32, seed) for seed in range(4)])
    out = ablate_box_tile(images, masks)
    for i in range(4):
        assert torch.equal(out[i : i + 1], ablate_box_tile(images[i : i + 1], masks[i : i + 1]))
        assert torch.equal(
            out[i : i + 1].float() / 255,
            release_tile(images[i : i + 1].float() / 255, masks[i : i + 1, None].float()),
        )


def test_inputs_are_not_modified():
    images = image()
    before = images.clone()
    ablate_object_gray(images, mask_of([(0, 0)]))
    ablate_box_gray(images, torch.tensor([[0, 1, 0, 1]]))
    ablate_box_tile(images, mask_of([(0, 0), (1, 1), (0, 1)]))
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
