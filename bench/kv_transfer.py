"""Throughput of the KV transfer layer against a plain memcpy of the same bytes.

The payload is a 2k-token prefix of the embedded model's base KV (16 blocks of 128 tokens,
30 layers, float32: 90 MiB), copied into KV-cache tensors shaped like vLLM-CPU's:

- ``memcpy``: one ``copy_`` of a contiguous tensor of the same size (the baseline);
- ``shared memory``: a decode engine's connector worker loading the blocks from another
  engine's arena in place (the same-host path, exactly the code an engine runs:
  tag checks before and after, block-by-block copies);
- ``ray pull``: the cross-host path, between two raylets of a local two-node Ray cluster
  (each with its own object store, talking over loopback TCP): the prefill side reads
  the blocks out of its arena, Ray moves them, the decode side writes them into its own
  arena.

    python -m bench.kv_transfer [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from alora_serve.kv.connector.metadata import AloraConnectorMetadata, BlockCopy, BlockLoad
from alora_serve.kv.connector.worker import ConnectorWorker
from alora_serve.kv.store.arena import ArenaSpec, SlotArena
from bench.report import write_report

LAYERS, KV_HEADS, HEAD_DIM, BLOCK = 30, 3, 64, 128  # SmolLM2-135M, block size 128
BLOCKS = 16  # 2048 tokens
BLOCK_NUMEL = 2 * KV_HEADS * HEAD_DIM * BLOCK
PAYLOAD_BYTES = BLOCKS * LAYERS * BLOCK_NUMEL * 4


def kv_cache(num_blocks: int) -> dict[str, torch.Tensor]:
    """Per-layer caches shaped like vLLM-CPU's: [blocks, kv heads, block, 2 * head dim]."""
    return {
        f"layers.{i}": torch.zeros(num_blocks, KV_HEADS, BLOCK, 2 * HEAD_DIM) for i in range(LAYERS)
    }


def make_arena(path: Path) -> SlotArena:
    return SlotArena.create(ArenaSpec(str(path), BLOCKS, LAYERS, BLOCK_NUMEL, "float32"))


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure_memcpy(repeats: int) -> list[float]:
    source = torch.randn(PAYLOAD_BYTES // 4)
    target = torch.empty_like(source)
    target.copy_(source)  # touch the pages first, as the other paths' targets are
    return [timed(lambda: target.copy_(source)) for _ in range(repeats)]


def measure_shared_memory(tmp: Path, repeats: int) -> list[float]:
    prefill_arena, decode_arena = make_arena(tmp / "prefill"), make_arena(tmp / "decode")
    prefill = ConnectorWorker(prefill_arena.spec, BLOCKS, kv_model="m", block_size=BLOCK)
    prefill_kv = {n: torch.randn_like(t) for n, t in kv_cache(BLOCKS).items()}
    prefill.register_kv_caches(prefill_kv, "CPU_ATTN")
    tags = list(range(1, BLOCKS + 1))
    prefill.wait_for_save(
        AloraConnectorMetadata(saves=[BlockCopy(b, b, tags[b]) for b in range(BLOCKS)])
    )
    decode_kv = kv_cache(BLOCKS)
    decode = ConnectorWorker(decode_arena.spec, BLOCKS, kv_model="m", block_size=BLOCK)
    decode.register_kv_caches(decode_kv, "CPU_ATTN")
    load = BlockLoad(
        [BlockCopy(b, b, tags[b]) for b in range(BLOCKS)], arena=prefill_arena.spec.path
    )
    meta = AloraConnectorMetadata(loads=[load])

    def run() -> None:
        decode.start_load_kv(meta)
        if decode.take_load_errors():
            raise RuntimeError("the load failed")

    run()  # maps the foreign arena once, as a running engine has
    times = [timed(run) for _ in range(repeats)]
    if not all(torch.equal(decode_kv[n], prefill_kv[n]) for n in decode_kv):
        raise RuntimeError("the copied blocks differ from the source")
    prefill_arena.unlink()
    decode_arena.unlink()
    return times


def measure_ray_pull(tmp: Path, repeats: int) -> list[float]:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"node_a": 1},
            "object_store_memory": 400 << 20,
        },
    )
    cluster.add_node(num_cpus=1, resources={"node_b": 1}, object_store_memory=400 << 20)
    ray.init(address=cluster.address, include_dashboard=False, configure_logging=False)
    try:
        holder = ray.remote(resources={"node_a": 1})(_BlockHolder).remote(str(tmp / "p"))
        puller = ray.remote(resources={"node_b": 1})(_BlockPuller).remote(str(tmp / "d"))
        if ray.get(holder.node.remote()) == ray.get(puller.node.remote()):
            raise RuntimeError("the two actors share a node: no network hop")
        ray.get(puller.pull.remote(holder))  # warm up both ends
        return [ray.get(puller.pull.remote(holder)) for _ in range(repeats)]
    finally:
        ray.shutdown()
        cluster.shutdown()


class _BlockHolder:
    """The prefill side: an arena of blocks, read out for a remote reader."""

    def __init__(self, path: str) -> None:
        self.arena = make_arena(Path(path))
        self.arena.write_slots(
            list(range(BLOCKS)),
            list(range(1, BLOCKS + 1)),
            torch.randn(BLOCKS, LAYERS, BLOCK_NUMEL),
        )

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def read(self):
        return self.arena.read_slots(list(range(BLOCKS))).numpy()


class _BlockPuller:
    """The decode side: pulls the blocks and writes them into its own arena."""

    def __init__(self, path: str) -> None:
        self.arena = make_arena(Path(path))

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def pull(self, holder) -> float:
        import numpy as np
        import ray

        started = time.perf_counter()
        blocks = torch.from_numpy(np.array(ray.get(holder.read.remote())))
        self.arena.write_slots(list(range(BLOCKS)), list(range(1, BLOCKS + 1)), blocks)
        return time.perf_counter() - started


def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        print(f"Payload: {PAYLOAD_BYTES / 2**20:.0f} MiB ({BLOCKS} blocks of {BLOCK} tokens)")
        runs = {"memcpy": measure_memcpy(repeats)}
        runs["shared memory"] = measure_shared_memory(Path(tmp), repeats)
        print("Starting a two-node Ray cluster ...", flush=True)
        runs["ray pull"] = measure_ray_pull(Path(tmp), repeats)
    rows = [
        {
            "path": path,
            "median_s": statistics.median(times),
            "mb_per_s": PAYLOAD_BYTES / 1e6 / statistics.median(times),
            "all_s": times,
        }
        for path, times in runs.items()
    ]
    for row in rows:
        print(f"  {row['path']}: {row['mb_per_s']:.0f} MB/s ({row['median_s'] * 1e3:.1f} ms)")
    memcpy = rows[0]["mb_per_s"]
    write_report(
        "kv_transfer",
        {
            "payload_bytes": PAYLOAD_BYTES,
            "repeats": repeats,
            "rows": rows,
            "bars": {
                "shared_memory_over_memcpy": rows[1]["mb_per_s"] / memcpy,
                "ray_pull_over_memcpy": rows[2]["mb_per_s"] / memcpy,
            },
        },
        plot=_plot,
    )


def _plot(result: dict, ax) -> None:
    rows = result["rows"]
    ax.bar([r["path"] for r in rows], [r["mb_per_s"] for r in rows], color=["grey", "C0", "C1"])
    for i, row in enumerate(rows):
        ax.annotate(f"{row['mb_per_s']:.0f} MB/s", (i, row["mb_per_s"]), ha="center", va="bottom")
    ax.set_ylabel("MB/s (median)")
    ax.set_title(
        f"KV transfer of a 2k-token prefix ({result['payload_bytes'] / 2**20:.0f} MiB), "
        "vs memcpy of the same bytes"
    )
    ax.grid(axis="y", alpha=0.3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    main(parser.parse_args().repeats)
