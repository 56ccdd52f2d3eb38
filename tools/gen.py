"""Generate (or check) gen/ from proto/: Python messages, gRPC stubs, type stubs, descriptor set.

`gen` writes gen/; `check` generates into a temporary folder and fails when it differs from
the committed gen/, so CI catches a proto change whose generated code was not committed.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
GOOGLEAPIS = ROOT / "third_party" / "googleapis"
GEN = ROOT / "gen"
DESCRIPTOR = "otao.pb"
ERROR_DETAIL_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # The mypy-protobuf plugins live beside this interpreter (the project's virtualenv).
    bin_dir = Path(sys.executable).parent
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{GOOGLEAPIS}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    _protoc(command)
    # Envoy's transcoder renders google.rpc.Status details (BadRequest field violations)
    # as JSON only if their types are in its descriptor set, so they are added here.
    descriptor = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{GOOGLEAPIS}",
        f"-I{well_known}",
        "--include_imports",
        f"--descriptor_set_out={out / DESCRIPTOR}",
        *protos,
        *ERROR_DETAIL_PROTOS,
    ]
    _protoc(descriptor)
    # Regular packages (not namespace packages), so setuptools and mypy find them plainly.
    for folder in [p for p in out.rglob("*") if p.is_dir()]:
        (folder / "__init__.py").touch()
    (out / "kaa" / "py.typed").touch()


def _protoc(command: list[str]) -> None:
    """Run protoc quietly (mypy-protobuf chatters on stderr); show its output on failure."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(done.returncode)


def differences(left: Path, right: Path) -> list[str]:
    found: list[str] = []
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found += [f"only in committed gen/: {n}" for n in comparison.left_only]
    found += [f"missing from gen/: {n}" for n in comparison.right_only]
    for name in comparison.common_files:
        if (left / name).read_bytes() != (right / name).read_bytes():
            found.append(f"differs: {(left / name).relative_to(left.parent)}")
    for name in comparison.common_dirs:
        found += differences(left / name, right / name)
    return found


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "gen"
    if mode == "gen":
        shutil.rmtree(GEN, ignore_errors=True)
        generate(GEN)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        found = differences(GEN, fresh) if GEN.exists() else ["gen/ is missing"]
    if found:
        print("gen/ is out of date with proto/; run `make gen` and commit:", *found, sep="\n  ")
        return 1
    print("gen/ matches proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
