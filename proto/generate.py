"""Regenerate the Python stubs under proto/dreamrender/v1 from the .proto files.

Run: python proto/generate.py   (needs grpcio-tools). tests/test_proto.py fails when the
committed stubs differ from what this produces.
"""
from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent


def generate(out_dir: Path) -> list[Path]:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every .proto into out_dir."""
    from grpc_tools import protoc  # imported lazily: only developers need grpcio-tools

    protos = sorted(PROTO_ROOT.glob("dreamrender/v1/*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    return sorted(p for p in out_dir.glob("dreamrender/v1/*_pb2*.py*"))


if __name__ == "__main__":
    written = generate(PROTO_ROOT)
    print("\n".join(str(p) for p in written))
    sys.exit(0)
