"""Errors a user can act on, shared by several modules.

``SelfLoopError`` is the base of every error whose message tells the user what to do: the command line
prints it as one line (exit status 2; ``SELFLOOP_DEBUG=1`` shows the traceback). Its subclasses keep a
built-in base too (``FileNotFoundError``, ``ValueError``, ...) where callers catch them by that.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class SelfLoopError(Exception):
    """An error a user can act on: its message is one line naming the flag or path and what to do."""


class InvalidConfigError(SelfLoopError, ValueError):
    """A config value that cannot work, found while the config is checked (before any run directory)."""


class NonFiniteLossError(SelfLoopError, RuntimeError):
    """Training produced a NaN or infinite loss; the run stops and keeps everything produced so far."""


class RunInterrupted(SelfLoopError, RuntimeError):
    """The run was asked to stop (SIGTERM, SLURM's pre-emption signal); rerunning it resumes."""


class MissingWeightsError(SelfLoopError, FileNotFoundError):
    """Pretrained weights are not in the cache and cannot be downloaded.

    Args:
        message: Human-readable explanation (names the expected path, the URL and how to fetch it).
        path: Where the weights file is expected.
        url: Where the weights file can be downloaded from.
    """

    def __init__(self, message: str, path: Path | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.url = url

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, Path | None, str | None]]:
        return type(self), (self.message, self.path, self.url)


class MissingRunFileError(SelfLoopError, FileNotFoundError):
    """A file of the run directory that a phase needs is missing or damaged and cannot be rebuilt."""


class PrerequisitesMissingError(SelfLoopError, FileNotFoundError):
    """Files a run needs before it starts (data, weights) are missing; every one is listed, with how to get it.

    Args:
        problems: one message per missing item.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            listed = " ".join(f"({i}) {p.rstrip('.')}." for i, p in enumerate(self.problems, start=1))
            message = f"{len(self.problems)} things this run needs are missing: {listed}"
        super().__init__(message)

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self) -> tuple[type, tuple[list[str]]]:
        return type(self), (self.problems,)


def yaml_syntax(error: BaseException | None) -> str | None:
    """``YAML syntax error at line L, column C: <problem> (<context>)`` for a YAML syntax error found in
    ``error`` or its causes (one line, where PyYAML's own message spans several); ``None`` when there is none."""
    while error is not None:
        if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
            mark = error.problem_mark
            context = f" ({error.context})" if error.context else ""
            return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {error.problem}{context}"
        error = error.__cause__ or error.__context__
    return None
