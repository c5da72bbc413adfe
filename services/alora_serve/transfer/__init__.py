"""The transfer layer: how a decode worker gets base KV it did not compute. Grants from
the prefill service are read in place on its host, or pulled (copied) from another host
into the worker's own store; fingerprints (``kv.fingerprint``) keep incompatible blocks out."""
