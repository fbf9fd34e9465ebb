"""Seeds derived from (seed, generation, phase, arch), so no phase depends on another's RNG state."""

from __future__ import annotations

import hashlib

import lightning as L


def phase_seed(seed: int, generation: int, phase: str, arch: str = "") -> int:
    """A 31-bit seed that is a pure function of where the loop is.

    Resuming a run re-enters a phase with exactly the seed it had the first time, whatever ran before.

    Args:
        seed: the run's base seed (``--loop.seed``).
        generation: generation index n.
        phase: the phase name, e.g. ``"generator"``, ``"sample"``, ``"classifier"``.
        arch: the classifier architecture for per-arch phases.
    """
    key = f"{seed}/{generation}/{phase}/{arch}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


def seed_phase(seed: int, generation: int, phase: str, arch: str = "") -> int:
    """Seed every global RNG (python, numpy, torch) for a phase and return the seed used."""
    value = phase_seed(seed, generation, phase, arch)
    L.seed_everything(value, workers=True, verbose=False)
    return value
