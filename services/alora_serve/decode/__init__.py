"""Decode workers: engines that run intrinsic adapters on conversations whose base KV the
prefill service owns (reached through the transfer layer), or, colocated, on their own."""
