"""DensitySeekingGenerator(source="real"): the tilt applied to the real split alone, the same every generation."""

from __future__ import annotations

import pytest
import torch
from test_reference import _digits, _fit, _majority_shares, _measured_and_tolerance, _tilted

from selfloop.data.image_set import ImageSet
from selfloop.generators.reference import DensitySeekingGenerator


def test_a_real_source_ignores_the_queue_so_the_tilt_does_not_compound() -> None:
    tilt = 2.0
    dm = _digits(bias="biased", majority=0.6)
    first = DensitySeekingGenerator(10, 3, 16, tilt=tilt, source="real")
    _fit(first, dm)
    real = first.memory
    assert len(real) == len(dm.real.train)
    majority = first.majority_subgroups()
    p = _majority_shares(real.subgroups, real.labels, majority)
    measured, tolerance, samples, labels = _measured_and_tolerance(first, _tilted(p, tilt), seed=2)
    assert abs(measured - _tilted(p, tilt).mean().item()) < tolerance

    # With the first generation's tilted samples in the queue, a fit still memorises the real split only,
    # so the next generation draws from the same tilted distribution (a training-set source would tilt again).
    dm.set_generated(ImageSet.generated(samples, labels))
    second = DensitySeekingGenerator(10, 3, 16, tilt=tilt, source="real")
    _fit(second, dm)
    assert torch.equal(second.memory.images, real.images)
    again, tolerance2, _, _ = _measured_and_tolerance(second, _tilted(p, tilt), seed=3)
    assert abs(again - measured) < tolerance + tolerance2


def test_an_unknown_source_is_refused_naming_the_flag() -> None:
    with pytest.raises(ValueError, match=r"--generator.init_args.source must be 'training_set' or 'real'"):
        DensitySeekingGenerator(10, 3, 16, source="queue")  # type: ignore[arg-type]
