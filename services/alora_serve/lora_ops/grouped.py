"""The punica wrapper vLLM-CPU's LoRA layers call, with grouped shrink and expand."""

from __future__ import annotations

from typing import Any

import torch
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

NO_LORA = -1  # vLLM's index of tokens whose request has no adapter

Run = tuple[int, int, int]  # rows [start, stop) of the batch, and their adapter's slot
# Below this many tokens per run, vLLM's per-token ops win: a step of several decodes with
# different adapters is many one-row products, each paying a call's fixed cost, where
# the stock ops pay one gather and one batched product (bench/lora_ops.py measures both).
MIN_TOKENS_PER_RUN = 8


def adapter_runs(token_lora_indices: torch.Tensor) -> list[Run]:
    """Consecutive tokens with the same adapter slot, as row ranges (vLLM lays out each
    request's tokens together, so a batch has about one run per request)."""
    slots, counts = torch.unique_consecutive(token_lora_indices, return_counts=True)
    runs, start = [], 0
    for slot, count in zip(slots.tolist(), counts.tolist(), strict=True):
        runs.append((start, start + count, slot))
        start += count
    return runs


def _matrix(stacked: torch.Tensor, slot: int, dtype: torch.dtype) -> torch.Tensor:
    """One adapter's matrix from a stacked weight ([slots, 1, rows, cols] or
    [slots, rows, cols])."""
    weight = stacked[slot]
    return weight.reshape(weight.shape[-2], weight.shape[-1]).to(dtype)


def grouped_shrink(
    out: torch.Tensor, x: torch.Tensor, lora_a: torch.Tensor, runs: list[Run], scale: float
) -> None:
    """``out[rows] = scale * x[rows] @ A[slot].T`` per run; rows without an adapter get 0."""
    for start, stop, slot in runs:
        rows = out[start:stop]
        if slot == NO_LORA:
            rows.zero_()
            continue
        a = _matrix(lora_a, slot, out.dtype)
        rows[:, : a.shape[0]] = (x[start:stop].to(out.dtype) @ a.t()).mul_(scale)


def grouped_expand(
    out: torch.Tensor,
    x: torch.Tensor,
    lora_b: torch.Tensor,
    runs: list[Run],
    columns: slice,
    add_inputs: bool,
) -> None:
    """``out[rows, columns] (+)= x[rows] @ B[slot].T`` per run."""
    for start, stop, slot in runs:
        target = out[start:stop, columns]
        if slot == NO_LORA:
            if not add_inputs:
                target.zero_()
            continue
        product = x[start:stop].to(out.dtype) @ _matrix(lora_b, slot, out.dtype).t()
        if add_inputs:
            target += product
        else:
            target.copy_(product)


def forget_adapters_of_base_rows(buffers: tuple[torch.Tensor, ...], runs: list[Run]) -> None:
    """Zero the shrunk rows of tokens without an adapter. vLLM-CPU's stock ops index those
    tokens (-1) into the last adapter slot, which applies that slot's adapter to them
    once every slot holds one (max_loras adapters loaded)."""
    for start, stop, slot in runs:
        if slot == NO_LORA:
            for buffer in buffers:
                buffer.view(-1, buffer.shape[-1])[start:stop].zero_()


def worth_grouping(runs: list[Run]) -> bool:
    """Whether a step's runs are long enough for grouped products to beat per-token ones
    (one run always is: one product per layer instead of a gather)."""
    tokens = runs[-1][1] if runs else 0
    return len(runs) == 1 or tokens >= MIN_TOKENS_PER_RUN * len(runs)


class GroupedPunicaWrapperCPU(PunicaWrapperCPU):
    """vLLM-CPU's punica wrapper with the linear layers' shrink and expand grouped by
    adapter run (computed once per step) where runs are long enough; otherwise the stock
    ops, with tokens without an adapter kept so; embeddings and logits: the stock ops.
    (vLLM-CPU marks every step a prefill, so both kinds of step come here alike.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runs: list[Run] = []
        self._grouped = False

    def update_metadata(self, *args: Any, **kwargs: Any) -> None:
        super().update_metadata(*args, **kwargs)
        self._runs = adapter_runs(self.token_lora_indices)
        self._grouped = worth_grouping(self._runs)

    def add_shrink(
        self,
        y: tuple[torch.Tensor, ...] | torch.Tensor,
        x: torch.Tensor,
        lora_a_stacked: tuple[torch.Tensor, ...],
        scale: float,
        **kwargs: Any,
    ) -> None:
        if not self._grouped:
            super().add_shrink(y, x, lora_a_stacked, scale, **kwargs)
            forget_adapters_of_base_rows(tuple(y), self._runs)
            return
        x = x.view(-1, x.shape[-1])
        for out, lora_a in zip(y, lora_a_stacked, strict=True):
            grouped_shrink(out.view(-1, out.shape[-1]), x, lora_a, self._runs, scale)

    def add_expand(
        self,
        y: torch.Tensor,
        x: tuple[torch.Tensor, ...] | torch.Tensor,
        lora_b_stacked: tuple[torch.Tensor, ...],
        output_slices: tuple[int, ...],
        offset_start: int = 0,
        add_inputs: bool = True,
        **kwargs: Any,
    ) -> None:
        if not self._grouped:
            return super().add_expand(
                y, x, lora_b_stacked, output_slices, offset_start, add_inputs, **kwargs
            )
        out, offset = y.view(-1, y.shape[-1]), offset_start
        for inputs, lora_b, size in zip(x, lora_b_stacked, output_slices, strict=True):
            columns = slice(offset, offset + size)
            grouped_expand(out, inputs, lora_b, self._runs, columns, add_inputs)
            offset += size
