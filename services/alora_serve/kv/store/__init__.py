"""The KV store: bounded, content-addressed blocks of base-model KV in a shared-memory
arena, owned by one engine process (bookkeeping here, bytes in the arena)."""
