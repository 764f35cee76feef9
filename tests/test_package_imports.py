"""The package's modules import one another without circles: every module-level import and
every import for type checking only goes one way. The report package sits above what it
renders: only the CLI imports it, at any level (a result does not write itself: the library
calls ``report.write_html(result, path)``). And outside prototxt, diagnose, logs and
layertypes, modules import those packages from their fronts (``__init__``), never their inner
modules."""

import ast
import importlib
import inspect
import os

import caffe_nantools

ROOT = os.path.dirname(caffe_nantools.__file__)


def modules():
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = "caffe_nantools." + os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def imported(path, known):
    """The package's modules that ``path`` imports at module level or for type checking (not
    inside functions)."""
    out = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                out.add(child.module)
                out.update(f"{child.module}.{a.name}" for a in child.names)
            elif isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            visit(child)

    with open(path) as f:
        visit(ast.parse(f.read()))
    return out & set(known)


def circles(graph):
    """Tarjan's strongly connected components of more than one module."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_no_module_imports_itself_through_others():
    known = modules()
    graph = {name: imported(path, known) - {name} for name, path in known.items()}
    assert circles(graph) == []


#: The report package's importers besides the CLI and itself that are known and meant to go:
#: diagnose's ``plot=`` draws its picture with the report's plots (issue 23: the plot takes
#: what it draws as arguments, and the CLI draws it).
RENDERER_USERS_ALLOWED = {"caffe_nantools.diagnose"}


def importers_of(package, known):
    """The modules outside ``package`` that import it or one of its modules, inside a
    function as well."""
    out = set()
    for name, path in known.items():
        if name == package or name.startswith(package + "."):
            continue
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            if any(n == package or n.startswith(package + ".") for n in names & set(known)):
                out.add(name)
    return out


def test_only_the_cli_imports_the_renderer():
    users = importers_of("caffe_nantools.report", modules()) - {"caffe_nantools.cli"}
    assert users == RENDERER_USERS_ALLOWED


def test_the_finder_sees_a_circle_when_there_is_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: Packages whose neighbours import them only through the front (their ``__init__``); inside,
#: modules import their siblings directly.
FRONTED = (
    "caffe_nantools.prototxt",
    "caffe_nantools.diagnose",
    "caffe_nantools.logs",
    "caffe_nantools.layertypes",
)

#: Reaches past a front that are known and meant to go: (importer, inner module).
ALLOWED: set = set()


def front_names(package):
    """The names a fronted package's ``__init__`` gives that are not its modules."""
    if package not in FRONTED:
        return set()
    front = importlib.import_module(package)
    return {name for name in front.__all__ if not inspect.ismodule(getattr(front, name))}


def reaches(source, importer, known):
    """The inner modules of a fronted package that ``importer`` (whose text is ``source``)
    imports, at any level (an import inside a function reaches in as well)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # A name the front gives is not its module of the same name (prototxt's
            # ``validate`` is the function).
            given = front_names(node.module)
            names = {node.module} | {
                f"{node.module}.{a.name}" for a in node.names if a.name not in given
            }
        elif isinstance(node, ast.Import):
            names = {a.name for a in node.names}
        else:
            continue
        for package in FRONTED:
            if importer == package or importer.startswith(package + "."):
                continue
            out.update(n for n in names & set(known) if n.startswith(package + "."))
    return out


def test_neighbours_import_prototxt_diagnose_and_logs_through_their_fronts():
    known = modules()
    found = set()
    for name, path in known.items():
        with open(path) as f:
            found.update((name, inner) for inner in reaches(f.read(), name, known))
    assert found - ALLOWED == set()
    # An allowance whose import has gone is removed with it.
    assert ALLOWED - found == set()


def test_the_rule_sees_a_reach_past_a_front():
    known = {
        "caffe_nantools.prototxt": "",
        "caffe_nantools.prototxt.net": "",
        "caffe_nantools.prototxt.validate": "",
        "caffe_nantools.diagnose.reading": "",
        "caffe_nantools.logs.chunks": "",
    }
    source = (
        "from caffe_nantools.prototxt import Net\n"
        "from caffe_nantools.prototxt import net, validate\n"
        "def later():\n"
        "    import caffe_nantools.diagnose.reading\n"
    )
    assert reaches(source, "caffe_nantools.watch.monitor", known) == {
        "caffe_nantools.prototxt.net",
        "caffe_nantools.diagnose.reading",
    }
    # Inside its own package a module imports its siblings directly.
    sibling = "from caffe_nantools.logs.chunks import Span\n"
    assert reaches(sibling, "caffe_nantools.logs.sweep", known) == set()
    assert reaches(sibling, "caffe_nantools.diagnose.trace", known) == {
        "caffe_nantools.logs.chunks"
    }


def test_each_front_gives_every_name_it_lists():
    for package in FRONTED:
        front = importlib.import_module(package)
        missing = [name for name in front.__all__ if not hasattr(front, name)]
        assert missing == [], package
        assert len(set(front.__all__)) == len(front.__all__), package
