"""The import rules of DESIGN.md ("Who may import whom") and no import cycles, checked on the source.

Every module of the project folders is parsed (AST, no import is executed) and every ``import`` counts,
also those inside functions, methods and ``if`` blocks: a cycle hidden in a function is still a cycle.
``importlib.import_module("...")`` strings (registry entry points) are not imports and are not counted.

How an import becomes edges of the module graph:

* ``import a.b.c`` and ``from a.b import c`` where ``a.b.c`` is a module -> ``a.b.c``; ``from a.b import
  name`` where ``name`` is not a module -> ``a.b`` (its ``__init__``); relative forms the same way.
* Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` and ``a``. For cycles that edge counts
  wherever that package is not already a parent of the importer (``hcgym.envs.x`` importing
  ``hcgym.perception.face.gallery`` depends on ``hcgym.perception`` and ``hcgym.perception.face``), so a
  cycle such as ``hcgym.perception -> hcgym.perception.face -> hcgym.perception`` is found, while a
  package's ``__init__`` importing its own submodules is not a cycle.

Rules apply to the imports as written. Where the tree breaks a rule today in code under change by its
owners, the violation is listed in :data:`KNOWN_VIOLATIONS`; a listed violation that is gone fails
:func:`test_known_violations_are_still_there`, so the set only shrinks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------ layers (update here)
CORE_PACKAGE = "hcgym"  #: the root package (folder ``core/``): shared types, geometry, errors, paths
ENVS, BACKENDS, AGENTS = "hcgym.envs", "hcgym.envs.backends", "hcgym.agents"
WORLDS, PERCEPTION, SYNTHESIS, SCRIPTS = "hcgym.worlds", "hcgym.perception", "hcgym.synthesis", "hcgym.scripts"

#: Top layer of synthesis: drives a backend, may use sensors; never envs (but envs.backends) or agents.
#: An entry covers the module, its submodules (``dataset.scene``) and split-offs named ``<entry>_*``.
SYNTHESIS_TOP = (
    "hcgym.synthesis.dataset",
    "hcgym.synthesis.views",
    "hcgym.synthesis.face_crops",
    "hcgym.synthesis.multiview",
    "hcgym.synthesis.studio",
    "hcgym.synthesis.identity_study",
    "hcgym.synthesis.face_sets",
    "hcgym.synthesis.motion_fidelity",
    "hcgym.synthesis.bench_sweep",
    "hcgym.synthesis.bench_sweep_report",
    "hcgym.synthesis.bench_frames",
    "hcgym.synthesis.action_data",
    "hcgym.synthesis.gesture_data",
    "hcgym.synthesis.expression_data",
    "hcgym.synthesis.world_signals",
)
#: Bottom layer of synthesis (pure avatars): imports only the root package and other bottom modules.
#: Every synthesis module not in SYNTHESIS_TOP is held to the bottom-layer rule; this list names them.
SYNTHESIS_BOTTOM = (
    "hcgym.synthesis",
    "hcgym.synthesis.anny_model",
    "hcgym.synthesis.avatar_spec",
    "hcgym.synthesis.avatar_cache",
    "hcgym.synthesis.builder",
    "hcgym.synthesis.texture",
    "hcgym.synthesis.poses",
    "hcgym.synthesis.expressions",
    "hcgym.synthesis.labels",
    "hcgym.synthesis.motion",
)

#: Violations tolerated for now (none: keep it that way). Rule violations: ``"importer -> imported: rule"``;
#: cycles: ``"cycle: " + sorted modules joined by ", "``.
KNOWN_VIOLATIONS: set[str] = set()


# ------------------------------------------------------------------------------------ module graph
@dataclass(frozen=True)
class Import:
    importer: str
    line: int
    target: str
    implicit: bool = False  #: a parent package's ``__init__`` run by importing ``target``'s submodule
    origin: str = ""  #: the module that wrote the import, where ``importer`` is the package holding it


def within(module: str, *packages: str) -> bool:
    """Whether ``module`` is one of ``packages`` or inside one of them."""
    return any(module == p or module.startswith(p + ".") for p in packages)


def project_modules(repo: Path = REPO) -> dict[str, tuple[Path, bool]]:
    """``hcgym.*`` module name -> (file, is a package), for every folder mapped in pyproject.toml."""
    text = (repo / "pyproject.toml").read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("package-dir"))
    mapping = dict(re.findall(r'"([\w.]+)"\s*=\s*"([\w./]+)"', line))
    assert mapping.get(CORE_PACKAGE) == "core", f"unexpected package-dir in pyproject.toml: {mapping}"
    modules: dict[str, tuple[Path, bool]] = {}
    for package, folder in mapping.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = path.relative_to(repo / folder).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            modules[".".join((package, *(parts[:-1] if is_package else parts)))] = (path, is_package)
    return modules


def resolve(name: str, known: Iterable[str]) -> str | None:
    """The longest known module that ``name`` is or lies in (``None`` outside the project)."""
    known = set(known)
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, source: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every project import in ``source`` (module ``module``), at any depth, with the parent-package edges."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            for a in node.names:
                found.append((node.lineno, f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem))
    out: list[Import] = []
    for line, name in found:
        target = resolve(name, known)
        if target is None or target == module:
            continue
        out.append(Import(module, line, target))
        parent = target.rpartition(".")[0]
        while parent:
            if not within(module, parent):
                out.append(Import(module, line, parent, implicit=True))
            parent = parent.rpartition(".")[0]
    return out


def import_graph(sources: dict[str, tuple[str, bool]]) -> list[Import]:
    """All imports of ``sources`` (module -> (source text, is a package))."""
    known = set(sources)
    return [imp for m, (src, pkg) in sorted(sources.items()) for imp in imports_of(m, src, pkg, known)]


def cycles(imports: list[Import]) -> list[list[Import]]:
    """One cycle (a list of imports, each importing the next importer) per strongly connected component."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        edges.setdefault(imp.importer, {}).setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    out = []
    for comp in components:  # shortest way from the first member back to itself, inside the component
        start, members = comp[0], set(comp)
        prev: dict[str, Import] = {}
        frontier = [start]
        while frontier and start not in prev:
            nxt = []
            for v in frontier:
                for w, imp in sorted(edges.get(v, {}).items()):
                    if w in members and w not in prev:
                        prev[w] = imp
                        nxt.append(w)
            frontier = nxt
        path, v = [], start
        while True:
            path.append(prev[v])
            v = prev[v].importer
            if v == start:
                break
        out.append(path[::-1])
    return out


def cycle_key(cycle: list[Import]) -> str:
    kind = "package cycle" if cycle[0].origin else "cycle"
    return f"{kind}: " + ", ".join(sorted({imp.importer for imp in cycle}))


def package_imports(imports: list[Import], packages: set[str], scope: str) -> list[Import]:
    """The imports between the packages inside ``scope``, each package one node (its ``__init__`` and its
    direct modules): ``hcgym.perception.nms.candidates`` importing ``hcgym.perception.detection`` is an
    edge ``hcgym.perception.nms -> hcgym.perception.detection``."""
    def node(m: str) -> str:
        return m if m in packages else m.rpartition(".")[0]

    return [Import(node(i.importer), i.line, node(i.target), origin=i.importer) for i in imports
            if not i.implicit and within(i.importer, scope) and within(i.target, scope)
            and node(i.importer) != node(i.target)]


# ------------------------------------------------------------------------------------ rules
def is_core(module: str) -> bool:
    """Modules of the root package's folder (``hcgym``, ``hcgym.types``, ...), not the subpackages."""
    return module == CORE_PACKAGE or (within(module, CORE_PACKAGE) and not within(
        module, ENVS, AGENTS, WORLDS, PERCEPTION, SYNTHESIS, SCRIPTS))


def is_synthesis_top(module: str) -> bool:
    return any(within(module, p) or module.startswith(p + "_") for p in SYNTHESIS_TOP)


def is_synthesis_bottom(module: str) -> bool:
    return within(module, SYNTHESIS) and not is_synthesis_top(module)


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[str], bool]  #: to the importing module
    allowed: Callable[[str], bool]  #: the imported module


RULES = (
    Rule("perception never imports envs, agents or scripts", lambda m: within(m, PERCEPTION),
         lambda t: not within(t, ENVS, AGENTS, SCRIPTS)),
    Rule("nothing imports scripts except scripts", lambda m: not within(m, SCRIPTS),
         lambda t: not within(t, SCRIPTS)),
    Rule("envs.backends imports no agents, no perception, no envs gym modules", lambda m: within(m, BACKENDS),
         lambda t: not within(t, AGENTS, PERCEPTION) and (within(t, BACKENDS) or not within(t, ENVS))),
    Rule("worlds imports only core and synthesis's bottom layer", lambda m: within(m, WORLDS),
         lambda t: is_core(t) or within(t, WORLDS) or is_synthesis_bottom(t)),
    Rule("synthesis's bottom layer imports only core and other bottom-layer synthesis modules "
         "(a top-layer module belongs in SYNTHESIS_TOP)", is_synthesis_bottom,
         lambda t: is_core(t) or is_synthesis_bottom(t)),
    Rule("synthesis's top layer never imports envs (but envs.backends) or agents", is_synthesis_top,
         lambda t: not within(t, AGENTS) and (within(t, BACKENDS) or not within(t, ENVS))),
)


def rule_violations(imports: list[Import]) -> list[tuple[Import, Rule]]:
    return [(imp, rule) for imp in imports if not imp.implicit for rule in RULES
            if rule.applies(imp.importer) and not rule.allowed(imp.target)]


def violation_key(imp: Import, rule: Rule) -> str:
    return f"{imp.importer} -> {imp.target}: {rule.name}"


# ------------------------------------------------------------------------------------ the tree
MODULES = project_modules()


def where(imp: Import) -> str:
    module = imp.origin or imp.importer
    path = MODULES[module][0] if module in MODULES else Path(module)
    return f"{path.relative_to(REPO) if path.is_absolute() else path}:{imp.line}"


@pytest.fixture(scope="module")
def tree_imports() -> list[Import]:
    return import_graph({m: (p.read_text(), pkg) for m, (p, pkg) in MODULES.items()})


def describe_cycle(cycle: list[Import]) -> str:
    def step(imp: Import) -> str:
        via = f"{imp.origin} imports it, " if imp.origin else ""
        return f"{imp.target} ({via}{where(imp)}{', parent package' if imp.implicit else ''})"

    return f"{cycle[0].importer} -> " + " -> ".join(step(imp) for imp in cycle)


def test_every_project_folder_is_scanned():
    for package in (CORE_PACKAGE, ENVS, BACKENDS, AGENTS, WORLDS, PERCEPTION, SYNTHESIS, SCRIPTS):
        assert package in MODULES and MODULES[package][1], package
    assert "hcgym.types" in MODULES and "hcgym.perception.registry" in MODULES
    assert len(MODULES) > 100


def test_import_rules(tree_imports):
    bad = [(imp, rule) for imp, rule in rule_violations(tree_imports) if violation_key(imp, rule) not in KNOWN_VIOLATIONS]
    assert not bad, "import rules of DESIGN.md broken:\n" + "\n".join(
        f"  {where(imp)}: {imp.importer} imports {imp.target}: {rule.name}" for imp, rule in bad)


def test_no_import_cycles(tree_imports):
    bad = [c for c in cycles(tree_imports) if cycle_key(c) not in KNOWN_VIOLATIONS]
    assert not bad, "import cycles (imports inside functions count):\n" + "\n".join(
        f"  {describe_cycle(c)}" for c in bad)


def test_no_cycles_between_perception_task_packages(tree_imports):
    """A task subpackage (face, detection, nms, ...) may use the perception package's modules (registry, base)
    and other tasks, but no two form a cycle and the perception package imports no task (the registry loads
    their registrations by name)."""
    packages = {m for m, (_, pkg) in MODULES.items() if pkg}
    bad = [c for c in cycles(package_imports(tree_imports, packages, PERCEPTION)) if cycle_key(c) not in KNOWN_VIOLATIONS]
    assert not bad, "import cycles between perception packages:\n" + "\n".join(
        f"  {describe_cycle(c)}" for c in bad)


def test_known_violations_are_still_there(tree_imports):
    packages = {m for m, (_, pkg) in MODULES.items() if pkg}
    found = {violation_key(*v) for v in rule_violations(tree_imports)} | {cycle_key(c) for c in cycles(tree_imports)}
    found |= {cycle_key(c) for c in cycles(package_imports(tree_imports, packages, PERCEPTION))}
    fixed = sorted(KNOWN_VIOLATIONS - found)
    assert not fixed, "fixed, remove from KNOWN_VIOLATIONS:\n" + "\n".join(f"  {k}" for k in fixed)


# ------------------------------------------------------------------------------------ the checker itself
def _graph(**sources: str) -> list[Import]:
    """Modules given as ``a__b__init`` (package ``a.b``) or ``a__b`` (module ``a.b``) keyword names."""
    mods = {}
    for key, src in sources.items():
        parts = key.split("__")
        pkg = parts[-1] == "init"
        mods[".".join(parts[:-1] if pkg else parts)] = (src, pkg)
    return import_graph(mods)


def test_checker_resolves_every_import_form():
    imps = _graph(hcgym__init="", hcgym__p__init="from hcgym.p.q import f\n", hcgym__p__q="",
                  hcgym__p__r="from . import q\nfrom .q import f\nfrom hcgym.p import thing\n",
                  hcgym__x__init="", hcgym__x__y="def f():\n    import hcgym.p.q as q\n")
    direct = {(i.importer, i.line, i.target) for i in imps if not i.implicit}
    assert direct == {("hcgym.p", 1, "hcgym.p.q"), ("hcgym.p.r", 1, "hcgym.p.q"), ("hcgym.p.r", 2, "hcgym.p.q"),
                      ("hcgym.p.r", 3, "hcgym.p"), ("hcgym.x.y", 2, "hcgym.p.q")}
    implicit = {(i.importer, i.target) for i in imps if i.implicit}
    assert implicit == {("hcgym.x.y", "hcgym.p")}  # hcgym is already a parent of every importer


def test_checker_finds_cycles_hidden_in_functions_and_through_packages():
    imps = _graph(hcgym__init="", hcgym__a="import hcgym.b\n", hcgym__b="def f():\n    from hcgym import a\n")
    (cycle,) = cycles(imps)
    assert cycle_key(cycle) == "cycle: hcgym.a, hcgym.b" and [i.line for i in cycle] in ([1, 2], [2, 1])
    # A package __init__ that imports its task subpackage, which imports the package's registry: no cycle.
    ok = _graph(hcgym__init="", hcgym__p__init="from hcgym.p.face import f\n", hcgym__p__reg="",
                hcgym__p__face__init="def f():\n    from hcgym.p.reg import r\n")
    assert cycles(ok) == []
    # The same subpackage using the package's own namespace is a cycle through the parent __init__.
    bad = _graph(hcgym__init="", hcgym__p__init="from hcgym.p.face import f\n", hcgym__p__reg="",
                 hcgym__p__face__init="def f():\n    from hcgym.p import make\n")
    assert [cycle_key(c) for c in cycles(bad)] == ["cycle: hcgym.p, hcgym.p.face"]


def test_checker_applies_the_rules():
    imps = _graph(hcgym__init="", hcgym__perception__init="", hcgym__envs__init="", hcgym__envs__backends__init="",
                  hcgym__perception__s="def f():\n    import hcgym.envs\n",
                  hcgym__envs__backends__e="from hcgym.perception import s\n",
                  hcgym__synthesis__init="", hcgym__synthesis__texture="from hcgym.synthesis.studio import x\n",
                  hcgym__synthesis__studio="from hcgym.envs.backends import e\nimport hcgym.envs\n")
    found = {(imp.importer, imp.target, rule.name.split()[0]) for imp, rule in rule_violations(imps)}
    assert found == {("hcgym.perception.s", "hcgym.envs", "perception"),
                     ("hcgym.envs.backends.e", "hcgym.perception.s", "envs.backends"),
                     ("hcgym.synthesis.texture", "hcgym.synthesis.studio", "synthesis's"),
                     ("hcgym.synthesis.studio", "hcgym.envs", "synthesis's")}
