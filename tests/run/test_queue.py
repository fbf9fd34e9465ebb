import pytest
import torch

from selfloop.run.queue import ShardError, StackingQueue


def _shard(n: int, value: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.full((n, 3, 4, 4), value, dtype=torch.uint8)
    return images, torch.arange(n) % 2, torch.linspace(0, 1, n)


def test_fifo_eviction_at_capacity(tmp_path):
    queue = StackingQueue(tmp_path, capacity=2)
    assert queue.push(1, *_shard(3, 1)) == []
    assert queue.push(2, *_shard(4, 2)) == []
    evicted = queue.push(3, *_shard(5, 3))
    assert [s.generation for s in evicted] == [1]
    assert queue.generations == [2, 3]
    # The evicted file stays until the caller has made the manifest durable.
    assert (tmp_path / "gen_001.pt").is_file()
    queue.discard(evicted)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["gen_002.pt", "gen_003.pt"]


def test_load_concatenates_oldest_first_with_unknown_subgroups(tmp_path):
    queue = StackingQueue(tmp_path, capacity=3)
    queue.push(1, *_shard(2, 10))
    queue.push(2, *_shard(3, 20))
    data = queue.load()
    assert len(data) == 5
    assert data.images[:2].eq(10).all() and data.images[2:].eq(20).all()
    assert data.labels.tolist() == [0, 1, 0, 1, 0]
    assert data.subgroups.eq(-1).all()


def test_shard_file_holds_images_labels_scores_generation(tmp_path):
    queue = StackingQueue(tmp_path, capacity=1)
    images, labels, scores = _shard(4, 7)
    queue.push(5, images, labels, scores)
    payload = torch.load(tmp_path / "gen_005.pt", weights_only=True)
    assert payload["generation"] == 5
    assert payload["images"].dtype == torch.uint8 and torch.equal(payload["images"], images)
    assert torch.equal(payload["labels"], labels) and torch.allclose(payload["scores"], scores)


def test_state_round_trip(tmp_path):
    queue = StackingQueue(tmp_path, capacity=2)
    queue.push(1, *_shard(2, 1))
    again = StackingQueue.from_state(tmp_path, 2, queue.state())
    assert again.generations == [1]
    assert torch.equal(again.load().images, queue.load().images)


def test_tampered_shard_is_reported_with_its_path(tmp_path):
    queue = StackingQueue(tmp_path, capacity=2)
    queue.push(1, *_shard(2, 1))
    path = tmp_path / "gen_001.pt"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ShardError, match="gen_001.pt.*does not match"):
        queue.load()
    path.unlink()
    with pytest.raises(ShardError, match="gen_001.pt is missing"):
        queue.load()


def test_capacity_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="--loop.queue_capacity"):
        StackingQueue(tmp_path, capacity=0)


def test_unbounded_queue_accumulates_every_generation(tmp_path):
    queue = StackingQueue(tmp_path, capacity=None)
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    for generation in range(1, 6):
        assert queue.push(generation, images, torch.zeros(2), torch.zeros(2)) == []
    assert queue.generations == [1, 2, 3, 4, 5]
    assert len(queue.load()) == 10
    restored = StackingQueue.from_state(tmp_path, None, queue.state())
    assert restored.generations == [1, 2, 3, 4, 5] and restored.capacity is None
