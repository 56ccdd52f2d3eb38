"""The import contract of docs/architecture.md, read from the source with ``ast``.

Layers import only downward (domain at the bottom, the composition root on top), and each
transport library has exactly one home: a second user is how protobuf, MongoDB documents or
HTTP responses leak into the core. Imports inside functions and under ``TYPE_CHECKING`` count
too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "otao"

# What each layer may import from otao. A package missing here is the composition root
# (app, components, platform, cli, settings, logs, __main__): it builds the graph and may
# import every layer, but no layer imports it.
LAYERS: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "store": frozenset({"domain"}),
    "integrations": frozenset({"domain"}),
    "security": frozenset({"domain", "integrations"}),
    "services": frozenset({"domain", "store", "integrations"}),
    "rpc": frozenset({"domain", "services", "security"}),
    "messaging": frozenset({"domain", "services"}),
    "observability": frozenset({"domain", "services", "store"}),
}

# Third-party top-level modules and the one otao package allowed to import them.
OWNERS: dict[str, str] = {
    "grpc": "rpc",
    "grpc_health": "rpc",
    "grpc_reflection": "rpc",
    "grpc_status": "rpc",
    "google": "rpc",  # protobuf runtime and google.rpc status details
    "kaa": "rpc",  # the generated protobuf package (gen/)
    "pymongo": "store",
    "bson": "store",
    "nats": "messaging",
    "fastavro": "messaging",
    "httpx": "integrations",
    "prometheus_client": "observability",
    "opentelemetry": "observability",
}

# Tracing is ambient, like logging: its hooks sit at every adapter boundary (the database
# call, the NATS publish, the gRPC call) and the log formatter reads the current span. So every
# layer but the pure domain may import this one module; it imports nothing of otao's.
AMBIENT = "otao.observability.tracing"

# The development stack is a client of the processes it starts (a health probe, the Envoy
# descriptor), not a layer of the service: it is exempt from the ownership rule.
EXEMPT = frozenset({"devstack"})


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _area(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path, source: str) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in the module, relative ones resolved."""
    package = ["otao", *path.relative_to(PACKAGE).parent.parts]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                module = node.module or ""
            else:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *filter(None, [node.module])])
            # "from a.b import c" may import module a.b.c: name it, so a rule about a.b.c holds.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations(path: Path, source: str | None = None) -> list[str]:
    """The contract's breaches in the module at ``path`` (read from disk unless ``source``)."""
    area = _area(path)
    where = path.relative_to(PACKAGE.parent)
    found: list[str] = []
    for line, name in _imports(path, path.read_text() if source is None else source):
        top, _, rest = name.partition(".")
        if top == "otao":
            if (name == AMBIENT or name.startswith(AMBIENT + ".")) and area != "domain":
                continue
            target = rest.partition(".")[0]
            if area in LAYERS and target != area and target not in LAYERS[area]:
                found.append(f"{where}:{line}: {area}/ imports otao.{target} ({name})")
        elif top in OWNERS and OWNERS[top] != area and area not in EXEMPT:
            found.append(f"{where}:{line}: {area}/ imports {name}, which only {OWNERS[top]}/ uses")
    return found


def test_the_contract_sees_every_module_and_every_layer() -> None:
    areas = {_area(path) for path in _modules()}
    assert set(LAYERS) <= areas
    assert len(_modules()) > 50


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_keeps_the_import_contract(path: Path) -> None:
    found = violations(path)
    assert not found, "import contract of docs/architecture.md broken:\n" + "\n".join(found)


def test_a_domain_module_importing_pymongo_breaks_the_contract() -> None:
    # The rule must be able to fail: the domain's models with two forbidden imports on top.
    models = PACKAGE / "domain" / "models.py"
    source = "import pymongo\nfrom ..store.software import SoftwareStore\n" + models.read_text()
    assert violations(models, source) == [
        "otao/domain/models.py:1: domain/ imports pymongo, which only store/ uses",
        "otao/domain/models.py:2: domain/ imports otao.store (otao.store.software.SoftwareStore)",
    ]
