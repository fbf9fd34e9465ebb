import torch

from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.data.subgroup_cells import SubgroupCellData


def test_cells_number_class_times_subgroups_plus_subgroup():
    digits = ColoredDigitsDataModule(image_size=16)
    cells = SubgroupCellData(digits)
    assert cells.num_classes == 30 and cells.class_names[4] == "1/green"
    train, real = cells.real.train, digits.real.train
    assert torch.equal(train.labels, real.labels * 3 + real.subgroups)
    assert torch.equal(train.labels % 3, real.subgroups) and torch.equal(train.images, real.images)
    cells.setup("fit")
    images, labels, _ = next(iter(cells.train_dataloader()))
    assert labels.max() < 30 and images.dtype == torch.uint8
