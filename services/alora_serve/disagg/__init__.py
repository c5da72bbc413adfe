"""Disaggregated serving: a prefill service owns the base KV of conversations; decode
workers run intrinsic adapters on it, reading the KV through the transfer layer."""
