"""Python code generated from the public API in protos/ (package ``alora.v1``).

The generated modules are committed under ``services/alora/v1/`` so that installs need no
protoc; ``python -m alora_serve.protos`` regenerates them, and a test fails when they
drift from the .proto files.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "protos"
GENERATED_ROOT = REPO / "services"
PROTO_FILES = ("alora/v1/intrinsics.proto",)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out: Path = GENERATED_ROOT) -> list[Path]:
    """Run protoc (grpcio-tools) over the API; returns the files written."""
    from importlib.resources import files

    from grpc_tools import protoc

    well_known = str(files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(PROTO_ROOT / name) for name in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(PROTO_FILES)}")
    return generated_files(out)


def generated_files(root: Path = GENERATED_ROOT) -> list[Path]:
    return [
        root / f"{name.removesuffix('.proto')}{suffix}"
        for name in PROTO_FILES
        for suffix in GENERATED_SUFFIXES
    ]


if __name__ == "__main__":
    for path in generate():
        print(f"wrote {path.relative_to(REPO)}")
