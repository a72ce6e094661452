"""The package's layers (issue #25): every import of every module, module-level or inside a function, points down
the layer order or within a layer, no two modules import each other through a cycle, and the package root holds
few modules. Read with ``ast``, nothing is imported.

Layers, low to high: utils < core < training < archs, losses, metrics < models < host < data, iqa < cli < tools
< paper. Sub-packages of one rank (archs, losses, metrics; data, iqa) do not import each other. ``paper`` is on top
because ``reproduce`` builds on the commands' arguments (cli) and on the recipe tables of the option-file generator
(tools); nothing imports it.

The one allowed exception: ``ddr_basicsr/__init__.py`` activates the seam (host) when the package is imported and
loads ``DDR`` (core) on first use; it belongs to no layer.
"""
import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

PACKAGE = Path(__file__).resolve().parents[1] / 'ddr_basicsr'
RANKS = {'utils': 0, 'core': 1, 'training': 2, 'archs': 3, 'losses': 3, 'metrics': 3, 'models': 4, 'host': 5,
         'data': 6, 'iqa': 6, 'cli': 7, 'tools': 8, 'paper': 9}
#: The ``python -m ddr_basicsr.train|test|score`` shims at the root are entry points, of the cli layer.
ROOT_SHIMS = {'ddr_basicsr.train': 'cli', 'ddr_basicsr.test': 'cli', 'ddr_basicsr.score': 'cli'}
EXEMPT = {'ddr_basicsr'}
MAX_ROOT_MODULES = 6


def package_modules() -> Dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its ``__init__.py``)."""
    modules = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        modules['.'.join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """The package's modules that ``name`` imports anywhere in its file (``from X import Y`` counts Y when it is a
    module, else X)."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]

    def known(dotted: str) -> Optional[str]:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition('.')[0]
        return dotted or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            found.update(known(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else known(base))
    return {module for module in found if module and module != name}


def import_graph() -> Dict[str, Set[str]]:
    modules = package_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def layer(module: str) -> str:
    """The layer of a module: its sub-package under ``ddr_basicsr`` (the root's entry shims: cli)."""
    return ROOT_SHIMS.get(module) or module.split('.')[1]


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import cycle (a list of modules, the first repeated at the end), or None."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(module: str) -> Optional[List[str]]:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def upward_imports(graph: Dict[str, Set[str]]) -> List[str]:
    """'module -> imported' for every import of a higher layer, or of another sub-package of the same rank."""
    found = []
    for module, targets in sorted(graph.items()):
        if module in EXEMPT:
            continue
        for target in sorted(targets):
            if target in EXEMPT:
                continue
            low, high = layer(target), layer(module)
            if RANKS[low] > RANKS[high] or (RANKS[low] == RANKS[high] and low != high):
                found.append(f'{module} -> {target}')
    return found


def test_every_module_has_a_layer():
    assert sorted({layer(module) for module in import_graph() if module not in EXEMPT} - set(RANKS)) == []


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_no_upward_import():
    upward = upward_imports(import_graph())
    assert upward == [], 'upward imports:\n' + '\n'.join(upward)


def test_the_documented_python_m_command_lines_still_run():
    """``python -m ddr_basicsr.train`` is run by tests/test_docs.py; the other two shims here."""
    import subprocess
    import sys
    for module in ('ddr_basicsr.test', 'ddr_basicsr.score'):
        run = subprocess.run([sys.executable, '-m', module, '--help'], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and 'usage:' in run.stdout, (module, run.stderr[-1000:])


def test_the_package_root_holds_few_modules():
    root_modules = sorted(path.name for path in PACKAGE.glob('*.py'))
    assert len(root_modules) <= MAX_ROOT_MODULES, root_modules


def test_the_checks_see_a_cycle_and_an_upward_import():
    graph = {'ddr_basicsr.core.a': {'ddr_basicsr.host.b'}, 'ddr_basicsr.host.b': {'ddr_basicsr.core.a'}}
    assert find_cycle(graph) == ['ddr_basicsr.core.a', 'ddr_basicsr.host.b', 'ddr_basicsr.core.a']
    assert upward_imports(graph) == ['ddr_basicsr.core.a -> ddr_basicsr.host.b']
