"""The engine API the services wrap: base generation and adapter invocation on vLLM.

One vLLM AsyncLLM runs the base model with every adapter loaded as a plain LoRA. For an
aLoRA adapter, the engine leases the base KV of the prompt before the invocation start s
from its KV store (computing it with the base model first if missing) and hands it to the
connector, so vLLM computes only tokens >= s, with the adapter: PEFT's aLoRA, exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from alora_serve.adapters import (
    AdapterSpec,
    InvocationNotFoundError,
    find_invocation_start,
    validate_for_base,
    vllm_lora_dir,
)
from alora_serve.adapters.merged import merged_checkpoint
from alora_serve.engine import vllm_glue
from alora_serve.engine.chat_template import ChatRenderer
from alora_serve.engine.config import EngineConfig
from alora_serve.engine.constrained import determined_output
from alora_serve.engine.errors import (
    EngineError,
    InvalidRequestError,
    KVLoadError,
    PromptTooLongError,
    RequestFailedError,
    UnknownAdapterError,
)
from alora_serve.engine.prefixes import HoldsPrefix, PrefixManager, PrefixSource
from alora_serve.engine.types import (
    ChatMessage,
    Generation,
    GenerationChunk,
    Phases,
    SamplingOptions,
)
from alora_serve.kv.fingerprint import KVFingerprint
from alora_serve.kv.orders import SaveOrder, to_params
from alora_serve.kv.store.arena import ArenaSpec, SlotArena, arena_path
from alora_serve.kv.store.block_pool import BlockPool, PoolStats
from alora_serve.kv.store.metrics import KVStoreCollector
from alora_serve.kv.store.prefix_store import PrefixStore
from alora_serve.model import ModelCheckpoint, resolve_model

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
WARM_UP_SALT = "warm-up"  # no tenant's salt: warm-up blocks never match a real request


@dataclass(frozen=True)
class LoadedAdapter:
    spec: AdapterSpec
    lora_request: Any  # vllm.lora.request.LoRARequest; None when merged into the weights


class Engine:
    """One running vLLM engine. Create with ``await Engine.start(config, adapters)``."""

    def __init__(
        self,
        config: EngineConfig,
        checkpoint: ModelCheckpoint,
        llm: Any,
        arena: SlotArena,
        adapters: dict[str, LoadedAdapter],
        kv_model: str,
    ) -> None:
        self.config = config
        self.checkpoint = checkpoint  # what vLLM runs: the base model, or an adapter merged
        self.tokenizer = llm.get_tokenizer()
        self.renderer = ChatRenderer(self.tokenizer)
        self.adapters = adapters
        self._llm = llm
        self.arena = arena
        self._kv_fingerprint: KVFingerprint | None = None  # published by the worker
        namespace = f"{kv_model}|{config.dtype}|{config.block_size}"
        pool = BlockPool(arena.spec.num_slots, ttl_s=config.kv_store_ttl_s)
        store = PrefixStore(pool, config.block_size, namespace)
        self.prefixes = PrefixManager(store, self.compute_base_kv)
        # Where adapter calls get base KV: this engine's store, unless a decode worker
        # points it at a prefill service (alora_serve.disagg).
        self.prefix_source: PrefixSource = self.prefixes
        self.kv_load_retries = 0
        self.in_flight = 0  # requests in vLLM now (cancelled calls abort theirs)

    @classmethod
    async def start(cls, config: EngineConfig, adapters: Sequence[AdapterSpec] = ()) -> Engine:
        base = resolve_model(config.model)
        _validate_adapters(adapters, base, config)
        kv_model = base.identity()
        served, loaded, max_rank = _served_model(config, base, adapters)
        arena = SlotArena.create(_arena_spec(config, base))
        try:
            from vllm.v1.engine.async_llm import AsyncLLM

            llm = AsyncLLM.from_engine_args(
                vllm_glue.engine_args(config, served, arena.spec, max_rank, kv_model)
            )
        except BaseException:
            arena.unlink()
            raise
        return cls(config, served, llm, arena, loaded, kv_model)

    # -- public API ------------------------------------------------------------------

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Prompt tokens for the next assistant turn, through the model's chat template
        (control tokens inside messages are escaped: see ``ChatRenderer``)."""
        return self.renderer.render(messages)

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str = DEFAULT_TENANT,
    ) -> Generation:
        return await self.generate(self.render_chat(messages), options, tenant)

    async def chat_stream(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str = DEFAULT_TENANT,
    ) -> AsyncIterator[GenerationChunk]:
        """The base model's turn as it is generated; closing the stream aborts it."""
        self._require_base_model("generate base-model text")
        prompt = self.render_chat(messages)
        sent, final = "", None
        async with self._generating(prompt, options, cache_salt=_tenant_salt(tenant)) as stream:
            async for final in stream:
                text = final.outputs[0].text
                if len(text) > len(sent):
                    yield GenerationChunk(text[len(sent) :])
                    sent = text
        result = _finished(final, kv_params=None)
        yield GenerationChunk("", result.finish_reason, result.usage)

    @property
    def merged(self) -> bool:
        """Whether vLLM runs one adapter merged into the weights (no base model here)."""
        return self.config.adapter_mode == "merged"

    async def generate(
        self, prompt: Sequence[int], options: SamplingOptions, tenant: str = DEFAULT_TENANT
    ) -> Generation:
        """The base model's continuation of ``prompt`` (its KV stays in vLLM's cache for
        the tenant's later calls on the conversation)."""
        self._require_base_model("generate base-model text")
        return await self._run(prompt, options, cache_salt=_tenant_salt(tenant))

    async def invoke(
        self,
        adapter: str,
        prompt: Sequence[int],
        options: SamplingOptions,
        tenant: str = DEFAULT_TENANT,
    ) -> Generation:
        """Run ``adapter`` on ``prompt``. aLoRA: base KV before the invocation is reused."""
        loaded = self.adapters.get(adapter)
        if loaded is None:
            raise UnknownAdapterError(adapter, list(self.adapters))
        if not loaded.spec.is_alora:
            return await self._run(prompt, options, loaded.lora_request)
        start = find_invocation_start(prompt, loaded.spec.invocation_tokens)
        if start is None:
            invocation = self.tokenizer.decode(list(loaded.spec.invocation_tokens))
            raise InvocationNotFoundError(
                f"the prompt does not contain the invocation sequence {invocation!r} of "
                f"aLoRA adapter {adapter!r}; append it where the adapter should take over"
            )
        began = time.perf_counter()
        try:
            return await self._invoke_alora(loaded, prompt, start, options, tenant)
        except KVLoadError:
            # The store's bytes for this prefix failed verification and were dropped
            # (never served): the retry recomputes them with the base model.
            self.kv_load_retries += 1
            logger.warning("prefix KV for %r failed verification; recomputing", adapter)
            lost = time.perf_counter() - began  # spent on base KV that proved unusable
            result = await self._invoke_alora(loaded, prompt, start, options, tenant)
            phases = dataclasses.replace(result.phases, base_kv_s=result.phases.base_kv_s + lost)
            return dataclasses.replace(result, phases=phases)

    @contextlib.asynccontextmanager
    async def holding(
        self, prefixes: Sequence[Sequence[int]], tenant: str = DEFAULT_TENANT
    ) -> AsyncIterator[dict[tuple[int, ...], HoldsPrefix]]:
        """Hold the base KV of several prefixes (computing what is missing, each block
        once, fills of different blocks together) while calls that start with them run;
        yields each prefix's lease (which says how many of its tokens it computed).
        Computing them all before any of those calls starts keeps the base model's
        prefill steps from slowing down the calls' short decode steps."""
        held: dict[tuple[int, ...], HoldsPrefix] = {}
        entered: list[contextlib.AbstractAsyncContextManager] = []

        async def take(tokens: Sequence[int]) -> None:
            lease = self.prefix_source.leased(tokens, tenant)
            held[tuple(tokens)] = await lease.__aenter__()
            entered.append(lease)

        try:
            outcomes = await asyncio.gather(*map(take, prefixes), return_exceptions=True)
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            if failures:
                raise failures[0]
            yield held
        finally:
            for lease in reversed(entered):
                await lease.__aexit__(None, None, None)

    async def warm_up(
        self, adapter: str | None, prompt: Sequence[int], options: SamplingOptions
    ) -> None:
        """Pay the first-use costs of a kind of request (output grammar compilation, the
        adapter's load, the first steps) before serving: runs ``prompt`` through
        ``adapter`` (None: the base model) without base KV, salted so that nothing it
        caches is ever reused. Its output is meaningless and dropped."""
        lora_request = None
        if adapter is not None:
            loaded = self.adapters.get(adapter)
            if loaded is None:
                raise UnknownAdapterError(adapter, list(self.adapters))
            lora_request = loaded.lora_request
        await self._run(prompt, options, lora_request, cache_salt=WARM_UP_SALT)

    async def compute_base_kv(self, prefix: Sequence[int], order: SaveOrder, tenant: str) -> int:
        """Run the base model over ``prefix`` and save its blocks as ``order`` says (a
        ``PrefixManager`` fill); returns the prompt tokens computed."""
        self._require_base_model("compute base-model KV")
        result = await self._run(
            prefix,
            SamplingOptions(max_tokens=1),
            kv_params=to_params(order),
            cache_salt=_tenant_salt(tenant),
        )
        return result.usage.computed_prompt_tokens

    async def reset_local_prefix_cache(self) -> None:
        """Forget vLLM's own cached blocks (the store keeps its own): later calls load
        their base prefix from the store, as after vLLM evicted it."""
        await self._llm.reset_prefix_cache()

    def kv_fingerprint(self) -> KVFingerprint:
        """What this engine's KV blocks are compatible with (published by its worker)."""
        if self._kv_fingerprint is None:
            self._kv_fingerprint = self.arena.fingerprint()
            if self._kv_fingerprint is None:
                raise RuntimeError("the engine's worker has not registered its KV cache")
        return self._kv_fingerprint

    def kv_store_stats(self) -> PoolStats:
        return self.prefixes.store.pool.stats()

    def metrics_collector(self, store_name: str = "prefix") -> KVStoreCollector:
        """A Prometheus collector of the KV store's size, hits, misses and evictions."""
        return KVStoreCollector(self.kv_store_stats, self.arena.spec.slot_bytes, store_name)

    async def shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop vLLM and free the store (callable where no event loop runs)."""
        if self._llm is not None:
            self._llm.shutdown()
            # Drop it now: AsyncLLM.__del__ shuts down again, which fails noisily if it
            # only runs during interpreter teardown.
            self._llm = None
            self.arena.unlink()

    # -- internals -------------------------------------------------------------------

    async def _invoke_alora(
        self,
        loaded: LoadedAdapter,
        prompt: Sequence[int],
        start: int,
        options: SamplingOptions,
        tenant: str,
    ) -> Generation:
        asked = time.perf_counter()
        async with self.prefix_source.leased(prompt[:start], tenant) as lease:
            base_kv_s = time.perf_counter() - asked
            result = await self._run(
                prompt,
                options,
                loaded.lora_request,
                kv_params=to_params(lease.load_order()),
                cache_salt=_tenant_salt(tenant),
            )
        # vLLM counts the supplied [0, s) as cached; what the lease computed for this call
        # was not found but made.
        usage = result.usage
        reused = max(0, usage.reused_prompt_tokens - lease.computed_tokens)
        return dataclasses.replace(
            result,
            usage=dataclasses.replace(usage, reused_prompt_tokens=reused),
            phases=dataclasses.replace(result.phases, base_kv_s=base_kv_s),
        )

    def _require_base_model(self, task: str) -> None:
        if self.merged:
            raise EngineError(
                f"this engine runs adapter {next(iter(self.adapters))!r} merged into its "
                f"weights and cannot {task}; use a prefill service or a lora-mode engine"
            )

    async def _run(
        self,
        prompt: Sequence[int],
        options: SamplingOptions,
        lora_request: Any = None,
        kv_params: dict | None = None,
        cache_salt: str | None = None,
    ) -> Generation:
        final, determined, first_at = None, None, None
        submitted = time.perf_counter()
        async with self._generating(prompt, options, lora_request, kv_params, cache_salt) as stream:
            async for output in stream:
                final = output
                first_at = first_at or time.perf_counter()
                if options.stop_when_determined:
                    determined = determined_output(options.json_schema, output.outputs[0].text)
                    if determined is not None:
                        break
        done = time.perf_counter()
        first_at = first_at or done
        phases = Phases(prefill_s=first_at - submitted, decode_s=done - first_at)
        if determined is not None:
            result = vllm_glue.to_generation(final)
            result = dataclasses.replace(result, text=determined, finish_reason="stop")
        else:
            result = _finished(final, kv_params)
        return dataclasses.replace(result, phases=phases)

    @contextlib.asynccontextmanager
    async def _generating(
        self,
        prompt: Sequence[int],
        options: SamplingOptions,
        lora_request: Any = None,
        kv_params: dict | None = None,
        cache_salt: str | None = None,
    ) -> AsyncIterator[AsyncIterator[Any]]:
        """vLLM's output stream of one request; leaving early (a break, an error, a
        cancelled call) aborts the request in vLLM."""
        limit = self.config.max_model_len
        if len(prompt) + options.max_tokens > limit:
            raise PromptTooLongError(
                f"the prompt is {len(prompt)} tokens and up to {options.max_tokens} more may "
                f"be generated, over the model's context of {limit} tokens; shorten the "
                "conversation or ask for fewer tokens"
            )
        stream = self._llm.generate(
            vllm_glue.tokens_prompt(prompt, cache_salt),
            vllm_glue.sampling_params(options, kv_params),
            request_id=uuid.uuid4().hex,
            lora_request=lora_request,
        )
        self.in_flight += 1
        try:
            async with contextlib.aclosing(stream):
                yield _client_errors_named(stream)
        finally:
            self.in_flight -= 1


async def _client_errors_named(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """vLLM's outputs; its refusals of a request's parameters become InvalidRequestError
    (vLLM checks them when the request starts streaming)."""
    from vllm.exceptions import VLLMClientError

    try:
        async for output in stream:
            yield output
    except VLLMClientError as exc:
        raise InvalidRequestError(f"the engine refused the request: {exc}") from None


def _finished(final: Any, kv_params: dict | None) -> Generation:
    """A request's last output as a Generation; raises if vLLM failed it."""
    if final is None:
        raise RequestFailedError("vLLM ended the request without any output")
    result = vllm_glue.to_generation(final)
    if result.finish_reason in ("error", "abort"):
        if kv_params is not None:
            raise KVLoadError("vLLM failed the request: its prefix KV could not be loaded")
        raise RequestFailedError(f"vLLM ended the request ({result.finish_reason})")
    return result


def _validate_adapters(
    adapters: Sequence[AdapterSpec], checkpoint: ModelCheckpoint, config: EngineConfig
) -> None:
    if not adapters:
        return
    from transformers import AutoTokenizer

    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise ValueError(f"adapter names must be unique, got {names}")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
    shapes = checkpoint.weight_shapes()
    for spec in adapters:
        validate_for_base(
            spec,
            base_name=checkpoint.name,
            base_weight_shapes=shapes,
            tokenizer=tokenizer,
            max_rank=config.max_lora_rank,
        )


def _served_model(
    config: EngineConfig, base: ModelCheckpoint, adapters: Sequence[AdapterSpec]
) -> tuple[ModelCheckpoint, dict[str, LoadedAdapter], int | None]:
    """What vLLM loads: (checkpoint, adapters by name, max LoRA rank or None: no LoRA)."""
    if config.adapter_mode == "merged":
        if len(adapters) != 1:
            raise ValueError(
                f"adapter_mode 'merged' runs exactly one adapter, got {len(adapters)}; "
                "use adapter_mode 'lora' to serve several from one engine"
            )
        (spec,) = adapters
        return merged_checkpoint(base, spec), {spec.name: LoadedAdapter(spec, None)}, None
    from vllm.lora.request import LoRARequest

    loaded = {
        spec.name: LoadedAdapter(spec, LoRARequest(spec.name, i, str(vllm_lora_dir(spec))))
        for i, spec in enumerate(adapters, start=1)
    }
    return base, loaded, _round_rank(max((s.rank for s in adapters), default=None))


def _tenant_salt(tenant: str) -> str:
    """vLLM's own prefix cache is shared by all requests; salting by tenant keeps one
    tenant's blocks from ever being hits for another. (Blocks of aLoRA requests are
    keyed further, past s, by adapter and s: see
    ``alora_serve.kv.connector.shared_base_blocks``.)"""
    return f"tenant:{tenant}"


def _arena_spec(config: EngineConfig, checkpoint: ModelCheckpoint) -> ArenaSpec:
    layers, kv_heads, head_dim = checkpoint.kv_geometry()
    block_numel = 2 * kv_heads * head_dim * config.block_size  # K and V
    path = arena_path(uuid.uuid4().hex[:8])
    return ArenaSpec.sized(path, config.kv_store_bytes, layers, block_numel, config.dtype)


def _round_rank(rank: int | None) -> int | None:
    """vLLM accepts max_lora_rank from a fixed set of sizes."""
    if rank is None:
        return None
    return next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank)
