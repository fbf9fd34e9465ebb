"""The documented user switch for machines without network: ``SELFLOOP_OFFLINE=1`` (or Hugging Face's
``HF_HUB_OFFLINE=1``) means no weights are ever downloaded; a missing file is then reported instead."""

from __future__ import annotations

import os

OFFLINE_ENV_VARS = ("SELFLOOP_OFFLINE", "HF_HUB_OFFLINE")
_TRUTHY = {"1", "true", "yes", "on"}


def downloads_allowed_by_env() -> bool:
    """False when one of ``OFFLINE_ENV_VARS`` is set to 1 / true / yes / on."""
    return not any(os.environ.get(var, "").strip().lower() in _TRUTHY for var in OFFLINE_ENV_VARS)
