"""Unpickle data-set files without running the code a crafted pickle can carry.

``pickle.load`` calls whatever callable a pickle names (``os.system``, ``builtins.exec``, ...), so
loading a file from an untrusted copy of a data set can run arbitrary code. The data sets' pickles
(CIFAR-100's ``train``/``test``/``meta``, Hard ImageNet's ``meta/*.pkl``) hold only dicts, lists,
strings, numbers and numpy arrays; :func:`load_restricted` admits exactly the globals those need and
refuses every other one before it is imported or called.

What the allow-list cannot stop: a pickle built only from admitted types still decides the values
(labels, class names, pixels) it holds, and a very large one still costs memory. Checksums
(``--data.check_integrity`` for CIFAR-100) are what vouch that a file is the official one.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from selfloop.data.errors import UntrustedPickleError

__all__ = ["NUMPY_GLOBALS", "load_restricted"]

_NUMPY_CORE = ("numpy.core", "numpy._core")  # numpy < 2 writes the first, numpy >= 2 the second

NUMPY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("numpy", "ndarray"), ("numpy", "dtype")}
    | {(f"{core}.multiarray", name) for core in _NUMPY_CORE for name in ("_reconstruct", "scalar")}
    # protocol 5 rebuilds contiguous arrays from their buffer
    | {(f"{core}.numeric", "_frombuffer") for core in _NUMPY_CORE}
    # protocols < 3 written by Python 3 store ``bytes`` (an array's data) as _codecs.encode(str, "latin1")
    | {("_codecs", "encode")}
)
"""The ``(module, name)`` globals that pickled numpy arrays and scalars reference, nothing else."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: Any, allowed: frozenset[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(handle, **kwargs)
        self.allowed = allowed
        self.refused: tuple[str, str] | None = None

    def find_class(self, module: str, name: str) -> Any:
        # Checked as written in the file, before the default implementation maps Python 2 names.
        if (module, name) not in self.allowed:
            self.refused = (module, name)
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def load_restricted(
    path: Path, allowed: frozenset[tuple[str, str]], release: str, remedy: str, encoding: str = "ASCII"
) -> Any:
    """Unpickle ``path`` admitting only the globals in ``allowed``.

    Args:
        path: the pickle.
        allowed: the ``(module, name)`` globals the official files reference (e.g. :data:`NUMPY_GLOBALS`);
            containers, strings and numbers need none.
        release: what the file should be, for the message (e.g. ``"CIFAR-100"``).
        remedy: what the user should do instead (how to get the official files).
        encoding: passed to :class:`pickle.Unpickler` (``"latin1"`` for Python 2 numpy pickles).

    Raises:
        UntrustedPickleError: the pickle references any other global (it was not called), naming the
            file and the global.
        Exception: whatever the unpickler raises on a damaged file (``UnpicklingError``, ``EOFError``, ...):
            callers report those as corrupt files.
    """
    with open(path, "rb") as handle:
        unpickler = _RestrictedUnpickler(handle, allowed, encoding=encoding)
        try:
            return unpickler.load()
        except pickle.UnpicklingError:
            if unpickler.refused is None:
                raise
            module, name = unpickler.refused
    raise UntrustedPickleError(
        path,
        f"refused to unpickle it: it calls {module}.{name}, which the official {release} files never "
        f"reference, so it is not the official {release} release (possibly a crafted file; that global "
        f"was neither imported nor called). {remedy}",
    )
