"""A vLLM-loadable copy of an adapter, made without touching the user's directory.

vLLM refuses configs with `alora_invocation_tokens`; loaded as a plain LoRA, with the
connector supplying base KV for everything before the invocation, it computes aLoRA
exactly. The copy lives in the cache, keyed by the adapter's content.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from alora_serve.adapters.spec import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ALORA_FIELD, AdapterSpec
from alora_serve.fsutil import atomic_directory
from alora_serve.model.checkpoint import file_sha256
from alora_serve.paths import cache_root


def vllm_lora_dir(spec: AdapterSpec) -> Path:
    config = {k: v for k, v in spec.config.items() if k != ALORA_FIELD}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    digest.update(file_sha256(spec.path / ADAPTER_WEIGHTS).encode())
    dest = cache_root() / "adapters" / f"{spec.name}-{digest.hexdigest()[:16]}"
    if (dest / ADAPTER_WEIGHTS).is_file():
        return dest
    with atomic_directory(dest) as scratch:
        (scratch / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))
        shutil.copyfile(spec.path / ADAPTER_WEIGHTS, scratch / ADAPTER_WEIGHTS)
    return dest
