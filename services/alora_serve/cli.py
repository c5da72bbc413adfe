"""The `alora-serve` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from alora_serve.model import ModelError

SELF_CHECK_QUESTION = "What is the capital of France?"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alora-serve", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare-model", help="convert the embedded default model once")
    prepare.add_argument("--force", action="store_true", help="rebuild even if a copy exists")
    prepare.set_defaults(run=_prepare_model)

    serve = commands.add_parser("serve", help="run the main job (engine + API) and keep serving")
    serve.add_argument("--model", default=None, help="HF checkpoint dir (default: embedded)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--max-model-len", type=int, default=4096)
    serve.add_argument("--kv-cache-gib", type=float, default=1.0)
    serve.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    serve.set_defaults(run=_serve)

    pipeline = commands.add_parser(
        "example-pipeline",
        help="run the RAG intrinsics pipeline (docs/intrinsics.md) on the embedded model",
    )
    pipeline.add_argument(
        "--library",
        default=None,
        help="adapter library with the pipeline's intrinsics (default: seeded stand-ins, "
        "made once in the cache)",
    )
    pipeline.set_defaults(run=_example_pipeline)

    chat = commands.add_parser("chat", help="send one chat message to a running server")
    chat.add_argument("message")
    chat.add_argument("--url", default="http://127.0.0.1:8000")
    chat.add_argument("--max-tokens", type=int, default=128)
    chat.set_defaults(run=_chat)
    return parser


def _prepare_model(args: argparse.Namespace) -> int:
    from alora_serve.model import prepare_embedded

    prepare_embedded(force=args.force, progress=lambda line: print(line, flush=True))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from alora_serve.engine import EngineConfig

    config = EngineConfig(
        model=args.model,
        max_model_len=args.max_model_len,
        kv_cache_gib=args.kv_cache_gib,
        dtype=args.dtype,
    )
    asyncio.run(_serve_async(config, args.host, args.port))
    return 0


async def _serve_async(config, host: str, port: int) -> None:
    import uvicorn

    from alora_serve.engine import ChatMessage, Engine, SamplingOptions
    from alora_serve.model import resolve_model
    from alora_serve.server.http_api import create_app

    checkpoint = resolve_model(config.model)  # fail fast, before vLLM spawns anything
    print(f"Starting vLLM engine on {checkpoint.path} ({config.dtype}) ...", flush=True)
    engine = await Engine.start(config)
    try:
        check = await engine.chat(
            [ChatMessage(role="user", content=SELF_CHECK_QUESTION)], SamplingOptions(max_tokens=32)
        )
        print(f"Self-check: {SELF_CHECK_QUESTION!r} -> {check.text!r}", flush=True)
        server = _graceful_server_class()(
            uvicorn.Config(create_app(engine), host=host, port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        if server.started:
            _print_banner(host, server.servers[0].sockets[0].getsockname()[1])
        await serving
    finally:
        await engine.shutdown()


def _graceful_server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Stops on SIGINT/SIGTERM after in-flight requests finish, and exits 0.

        uvicorn's own handler re-raises the signal after shutdown, which turns a
        requested stop into a KeyboardInterrupt traceback and exit status 1.
        """

        @contextlib.contextmanager
        def capture_signals(self):
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    return GracefulServer


def _print_banner(host: str, port: int) -> None:
    url = f"http://{host}:{port}"
    body = json.dumps({"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32})
    print(
        f"alora-serve listening on {url}\n"
        f"  health: curl {url}/health\n"
        f"  chat:   alora-serve chat --url {url} 'Hello!'\n"
        f"     or:  curl -s {url}/v1/chat/completions -H 'content-type: application/json' "
        f"-d '{body}'\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )


def _example_pipeline(args: argparse.Namespace) -> int:
    from alora_serve.examples.rag_pipeline import run_example

    result = asyncio.run(run_example(args.library, progress=lambda line: print(line, flush=True)))
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _chat(args: argparse.Namespace) -> int:
    import httpx

    response = httpx.post(
        f"{args.url}/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": args.message}],
            "max_tokens": args.max_tokens,
        },
        timeout=300,
    )
    if response.is_error:
        print(f"error {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    print(response.json()["choices"][0]["message"]["content"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
