import pytest
import torch

from selfloop.data.coloring import colorize
from selfloop.data.digits import ColoredDigitsDataModule


def test_splits_shapes_and_colour_painting():
    dm = ColoredDigitsDataModule(image_size=16)
    real = dm.real
    assert real.train.images.shape[1:] == (3, 16, 16) and real.train.images.dtype == torch.uint8
    assert len(real.train) + len(real.val) + len(real.test) // 3 == 1797
    # Only the subgroup's channel carries strokes.
    images, subgroups = real.train.images, real.train.subgroups
    for color in range(3):
        chosen = images[subgroups == color]
        others = [c for c in range(3) if c != color]
        assert chosen[:, others].eq(0).all() and chosen[:, color].max() > 200


def test_test_split_is_balanced_over_class_and_colour():
    test = ColoredDigitsDataModule(image_size=16).real.test
    counts = torch.zeros(10, 3, dtype=torch.long)
    counts.index_put_((test.labels, test.subgroups), torch.ones_like(test.labels), accumulate=True)
    # Every test digit appears once in each colour.
    assert (counts == counts[:, :1]).all()


def test_biased_colour_counts_follow_the_table_exactly():
    dm = ColoredDigitsDataModule(bias="biased", majority=0.8, image_size=16)
    train = dm.real.train
    for c in range(10):
        colors = train.subgroups[train.labels == c]
        n = len(colors)
        majority = (colors == c % 3).sum().item()
        assert abs(majority - 0.8 * n) <= 1
        for other in set(range(3)) - {c % 3}:
            assert abs((colors == other).sum().item() - 0.1 * n) <= 1


def test_unbiased_colours_are_uniform_per_class():
    train = ColoredDigitsDataModule(image_size=16).real.train
    for c in range(10):
        colors = train.subgroups[train.labels == c]
        counts = torch.bincount(colors, minlength=3)
        assert counts.max() - counts.min() <= 1


def test_same_split_seed_same_data_and_other_seed_differs():
    a = ColoredDigitsDataModule(image_size=16).real.train
    b = ColoredDigitsDataModule(image_size=16).real.train
    c = ColoredDigitsDataModule(image_size=16, split_seed=1).real.train
    assert torch.equal(a.images, b.images) and torch.equal(a.subgroups, b.subgroups)
    assert not torch.equal(a.subgroups, c.subgroups)


def test_train_set_is_real_plus_generated():
    dm = ColoredDigitsDataModule(image_size=16)
    dm.setup("fit")
    n_real = len(dm.train_set)
    from selfloop.data.image_set import ImageSet

    generated = ImageSet.generated(torch.zeros(5, 3, 16, 16, dtype=torch.uint8), torch.arange(5))
    dm.set_generated(generated)
    dm.setup("fit")
    assert len(dm.train_set) == n_real + 5
    assert dm.train_set.subgroups[-5:].eq(-1).all()
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].dtype == torch.uint8 and batch[0].shape == (64, 3, 16, 16)


def test_bad_color_table_names_the_flag():
    with pytest.raises(ValueError, match="--data.color_probs.*shape"):
        ColoredDigitsDataModule(bias="biased", color_probs=[[1.0, 0.0, 0.0]] * 9)
    with pytest.raises(ValueError, match="--data.color_probs.*sum"):
        ColoredDigitsDataModule(bias="biased", color_probs=[[0.5, 0.0, 0.0]] * 10)


def test_colorize_puts_strokes_in_one_channel():
    gray = torch.tensor([[[0, 255], [128, 0]]], dtype=torch.uint8).expand(3, 2, 2)
    out = colorize(gray, torch.tensor([0, 1, 2]))
    for i in range(3):
        assert torch.equal(out[i, i], gray[i])
        assert out[i].sum() == gray[i].sum()
