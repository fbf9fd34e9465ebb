"""The documented user switch for machines without network: ``SELFLOOP_OFFLINE=1`` (or Hugging Face's
``HF_HUB_OFFLINE=1``) means no weights are ever downloaded; a missing file is then reported instead."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

OFFLINE_ENV_VARS = ("SELFLOOP_OFFLINE", "HF_HUB_OFFLINE")
_TRUTHY = {"1", "true", "yes", "on"}


def downloads_allowed_by_env() -> bool:
    """False when one of ``OFFLINE_ENV_VARS`` is set to 1 / true / yes / on."""
    return not any(os.environ.get(var, "").strip().lower() in _TRUTHY for var in OFFLINE_ENV_VARS)


@functools.cache
def host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds; asked once per process, so an
    offline machine learns it in one quick try instead of a download library's retries with back-off."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def download_blocker(url: str, allowed: bool) -> str | None:
    """Why ``url`` cannot be downloaded now (``None`` if it can be tried): downloading is off, or its host
    cannot be reached."""
    if not allowed:
        return f"downloading is off ({' / '.join(OFFLINE_ENV_VARS)} or allow_download false)"
    host = urlparse(url).hostname or url
    if not host_reachable(host):
        return f"{host} cannot be reached from this machine (offline?)"
    return None
