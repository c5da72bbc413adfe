"""Generated from protos/ by `python -m alora_serve.protos`; do not edit."""
