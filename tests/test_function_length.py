"""No function of the package is longer than 60 lines: a longer one is split into parts that
have names of their own. A function is measured from its ``def`` to its last line, without its
docstring (documenting the arguments of a public function should not push its code apart)."""

import ast
import os
import textwrap

import caffe_nantools

ROOT = os.path.dirname(caffe_nantools.__file__)
LIMIT = 60


def lengths(source, module):
    """``{module.qualified.name: lines}`` of every function in ``source``, nested ones too."""
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}.{child.name}"
                found[name] = child.end_lineno - child.lineno + 1 - _docstring_lines(child)
                visit(child, name)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}.{child.name}")
            else:
                visit(child, prefix)

    visit(ast.parse(source), module)
    return found


def _docstring_lines(function):
    if ast.get_docstring(function, clean=False) is None:
        return 0
    return function.body[0].end_lineno - function.body[0].lineno + 1


def package_lengths():
    found = {}
    for folder, _, files in os.walk(ROOT):
        for file in sorted(files):
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                module = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
                if module.endswith("__init__"):
                    module = module[: -len("__init__")].rstrip(".")
                with open(path, encoding="utf-8") as f:
                    found.update(lengths(f.read(), module or "caffe_nantools"))
    return found


def test_a_function_is_measured_from_its_def_to_its_last_line_without_its_docstring():
    source = textwrap.dedent(
        '''
        class Reader:
            def read(self, path):
                """Two lines
                of docstring."""

                def opened():
                    return open(path)

                return opened()


        def plain(x):
            return x
        '''
    )
    assert lengths(source, "m") == {"m.Reader.read": 6, "m.Reader.read.opened": 2, "m.plain": 2}


def test_no_function_is_over_60_lines():
    over = {name: n for name, n in package_lengths().items() if n > LIMIT}
    assert over == {}, f"split these functions into named parts of at most {LIMIT} lines"
