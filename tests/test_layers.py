"""Layer rules (shared/design.md) as tests: signaling/ never imports aiortc, aioice or sfu, and
aiortc's and aioice's private attributes are reached only in sfu/rtc/, tests included, so that
an upgrade of either breaks in one place (sfu/rtc/, and its tests in tests/rtc/).

What is private to aiortc or aioice is read from their installed sources, by name: an attribute
with one leading underscore that a class of theirs defines (`self._x = ...`, `def _x`, a class
attribute), or a mangled `_RTCPeerConnection__x`. Outside sfu/rtc/ such a name may only be an
attribute of our own: one that our classes define, where a class of ours that derives from
theirs does not count the names its base defines (an override is a use of their internals).
A line reaching another library by a name aiortc also uses says so: `# layers: not aiortc`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import aioice
import aiortc

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [Path(aiortc.__file__).parent, Path(aioice.__file__).parent]
LIBRARIES = {"aiortc", "aioice"}
MEDIA = {*LIBRARIES, "av", "pylibsrtp", "sfu"}
ALLOWED = ROOT / "sfu" / "rtc"
MARKER = "# layers: not aiortc"


def python_files(root: Path) -> list[Path]:
    skip = {".venv", "node_modules", ".git", "build", "artifacts"}
    return sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts))


def imported_modules(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
        elif (
            isinstance(node, ast.Call)
            and _called(node) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value)


def test_signaling_imports_no_media_library() -> None:
    files = python_files(ROOT / "signaling")
    found = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module in imported_modules(ast.parse(path.read_text()))
        if module.split(".")[0] in MEDIA
    ]
    assert not found, f"signaling/ imports the media plane: {found}"
    # And for real: importing every module of signaling/ loads none of them, even indirectly.
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in files
    ]
    probe = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(MEDIA)!r})))"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"importing signaling/ loads {run.stdout.strip()}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def _called(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def _defined(cls: ast.ClassDef) -> set[str]:
    """Private attribute names a class body defines on its objects."""
    names: set[str] = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name):
            names.add(node.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and _root(node.value) in ("self", "cls")
            and _private(node.attr)
        ):
            names.add(node.attr)
    for statement in cls.body:  # class attributes, and __slots__ entries
        value: ast.expr | None
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign):
            targets, value = [statement.target], statement.value
        else:
            continue
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            if _private(target.id):
                names.add(target.id)
            elif target.id == "__slots__" and value is not None:
                names.update(
                    c.value
                    for c in ast.walk(value)
                    if isinstance(c, ast.Constant)
                    and isinstance(c.value, str)
                    and _private(c.value)
                )
    return names


@dataclass
class Library:
    """aiortc's and aioice's classes: what each defines, and its bases (by name)."""

    classes: dict[str, tuple[set[str], list[str]]] = field(default_factory=dict)

    def private(self, cls: str, seen: frozenset[str] = frozenset()) -> set[str]:
        """What a class of theirs and its bases of theirs define."""
        if cls not in self.classes or cls in seen:
            return set()
        names, bases = self.classes[cls]
        return names.union(*(self.private(b, seen | {cls}) for b in bases))

    def every_private(self) -> set[str]:
        return set().union(*(names for names, _ in self.classes.values()))


@cache
def library() -> Library:
    lib = Library()
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    names, bases = lib.classes.setdefault(node.name, (set(), []))
                    names |= _defined(node)
                    bases += [b for b in map(_base_name, node.bases) if b]
    return lib


def _library_names(tree: ast.AST) -> set[str]:
    """Names a module binds to aiortc, aioice, or what it imports from them."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARIES:
                    names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def ours(trees: Iterable[ast.AST]) -> set[str]:
    """Private names our classes define for themselves."""
    lib, names = library(), set()
    for tree in trees:
        foreign = _library_names(tree)
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            inherited: set[str] = set()
            for base in cls.bases:
                if _root(base) in foreign:
                    inherited |= lib.private(_base_name(base) or "")
            names |= _defined(cls) - inherited
    return names


def _attribute(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and _private(node.attr):
        return node.attr
    if (  # getattr(x, "_y"), setattr, hasattr, delattr, monkeypatch.setattr(x, "_y", ...)
        isinstance(node, ast.Call)
        and _called(node) in ("getattr", "setattr", "hasattr", "delattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and _private(node.args[1].value)
    ):
        return node.args[1].value
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name):
        return node.name  # an override, when a class of ours derives from one of theirs
    return None


def violations(files: Iterable[Path]) -> list[str]:
    trees = {path: ast.parse(path.read_text()) for path in files}
    lib = library()
    theirs, own = lib.every_private(), ours(trees.values())
    found = []
    for path, tree in trees.items():
        lines = path.read_text().splitlines()
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
                found += [
                    f"{where}:{node.lineno}: import {a.name}"
                    for a in node.names
                    if _private(a.name)
                ]
            name = _attribute(node)
            if name is None or MARKER in lines[getattr(node, "lineno", 1) - 1]:
                continue
            owner, _, rest = name[1:].partition("__")
            mangled = bool(rest) and owner in lib.classes
            if mangled or (name in theirs and name not in own):
                found.append(f"{where}:{getattr(node, 'lineno', 0)}: {name}")
    return sorted(set(found))


def test_private_internals_of_aiortc_and_aioice_only_in_sfu_rtc() -> None:
    found = violations(p for p in python_files(ROOT) if not p.is_relative_to(ALLOWED))
    assert not found, (
        "private attributes of aiortc/aioice used outside sfu/rtc/ (add a helper there, with "
        "its test in tests/rtc/):\n" + "\n".join(found)
    )


def test_the_rule_sees_what_it_must() -> None:
    # The check itself, on sfu/rtc/, where every such use belongs: it must find them there.
    found = violations(python_files(ALLOWED))
    assert any("_RTCPeerConnection__iceTransports" in f for f in found), found
    assert any(f.endswith(": _connection") for f in found), found
