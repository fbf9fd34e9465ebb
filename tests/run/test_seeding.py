import torch

from selfloop.run.seeding import phase_seed, seed_phase


def test_phase_seed_is_a_pure_function_of_the_position():
    assert phase_seed(0, 1, "classifier", "lenet") == phase_seed(0, 1, "classifier", "lenet")
    distinct = {
        phase_seed(0, 1, "classifier", "lenet"),
        phase_seed(1, 1, "classifier", "lenet"),
        phase_seed(0, 2, "classifier", "lenet"),
        phase_seed(0, 1, "generator", "lenet"),
        phase_seed(0, 1, "classifier", "alexnet"),
    }
    assert len(distinct) == 5
    assert all(0 <= s < 2**31 for s in distinct)


def test_seed_phase_resets_global_rng_whatever_ran_before():
    seed_phase(0, 1, "generator")
    first = torch.rand(3)
    torch.rand(100)
    seed_phase(0, 1, "generator")
    assert torch.equal(torch.rand(3), first)
