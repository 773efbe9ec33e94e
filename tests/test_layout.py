"""The house rules of the source tree, for the engine (stagegen/) and the built-in plugins
(plugins/): no import cycles inside stagegen (lazy imports included), no module over 400 lines
(one over about 300 says why in its docstring), no function over 60 lines, and every built-in
plugin a package of its own under plugins/, registered through the entry points."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "stagegen"
LONG = 330  # "about 300"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SOURCES = [*PACKAGE.rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """stagegen modules ``path`` imports anywhere (functions too), except under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("stagegen"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("stagegen"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_inside_stagegen():
    graph = _graph()
    # a package importing its own submodules is its table of contents, not a cycle
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_long_modules_say_why():
    for path in SOURCES:
        lines = len(path.read_text().splitlines())
        if lines > LONG:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "300 lines" in doc, f"{path.relative_to(ROOT)} has {lines} lines and its docstring does not say why"


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def _long_functions(source: str) -> dict[str, int]:
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found[node.name] = lines
    return found


def test_the_function_rule_counts_lines():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert _long_functions(f"def long():\n{body}\n") == {"long": MAX_FUNCTION_LINES + 1}
    assert _long_functions(f"def short():\n{body[: body.rindex(chr(10))]}\n") == {}


def test_no_function_is_over_60_lines():
    long = {f"{p.relative_to(ROOT)}:{name}": n for p in SOURCES for name, n in _long_functions(p.read_text()).items()}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_every_builtin_plugin_is_a_package_under_plugins_with_an_entry_point():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["stagegen"].values()
    packages = {value.split(".")[0] for value in entry_points}
    assert packages == {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file()}
    package_dirs = project["tool"]["setuptools"]["package-dir"]
    assert all(package_dirs[name] == f"plugins/{name}" for name in packages)
    assert not any(value.startswith("stagegen.") for value in entry_points), "a built-in plugin inside the engine"
