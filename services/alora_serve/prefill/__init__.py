"""The prefill service: a base-model engine that owns conversations' KV, computes what is
missing once, and lends it to decode workers under bounded, expiring leases."""
