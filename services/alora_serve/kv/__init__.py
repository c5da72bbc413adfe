"""KV blocks outside vLLM: the store (in the engine's process) and the vLLM connector (in
vLLM's worker process), which talk only through orders (``orders.py``) and agree on block
layout through fingerprints (``fingerprint.py``)."""
