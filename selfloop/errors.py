"""Errors a user can act on, shared by several modules."""

from __future__ import annotations


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run stops and keeps everything produced so far."""


class RunInterrupted(RuntimeError):
    """The run was asked to stop (SIGTERM, SLURM's pre-emption signal); rerunning it resumes."""
