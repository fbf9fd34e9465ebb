import torch

from selfloop.classifiers.image_classifier import ImageClassifier


def test_preprocess_normalises_uint8_for_a_network_from_scratch():
    model = ImageClassifier(arch="lenet", num_classes=3, in_channels=1, image_size=16)
    images = torch.full((2, 1, 16, 16), 255, dtype=torch.uint8)
    x = model.preprocess(images)
    # From scratch: native size, mean 0.5 and std 0.5, so white maps to 1.
    assert x.shape == (2, 1, 16, 16) and torch.allclose(x, torch.ones_like(x))


def test_channels_last_gives_the_same_predictions():
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    torch.manual_seed(0)
    plain = ImageClassifier(arch="alexnet", num_classes=4, image_size=16, channels_last=False).eval()
    torch.manual_seed(0)
    fast = ImageClassifier(arch="alexnet", num_classes=4, image_size=16, channels_last=True).eval()
    fast.on_fit_start()
    assert fast.preprocess(images).is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fast(images), plain(images), atol=1e-5)


def test_mc_dropout_is_seeded_and_samples_dropout():
    torch.manual_seed(0)
    model = ImageClassifier(arch="lenet", num_classes=4, image_size=16, dropout=0.5)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    a = model.mc_dropout_probs(images, passes=3, seed=1)
    assert torch.equal(a, model.mc_dropout_probs(images, passes=3, seed=1))
    assert not torch.equal(a, model.mc_dropout_probs(images, passes=3, seed=2))
    assert torch.allclose(a.sum(1), torch.ones(8))
