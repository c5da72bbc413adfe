"""Where alora-serve keeps prepared models and other cached artefacts."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ALORA_SERVE_CACHE"


def cache_root() -> Path:
    """The cache directory: ``$ALORA_SERVE_CACHE`` or ``~/.cache/alora-serve``."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "alora-serve"


def models_dir() -> Path:
    return cache_root() / "models"
