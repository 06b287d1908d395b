"""Which part of minispeech may import which: DESIGN.md's "never" rules, from source.

Every file under minispeech/ is parsed with `ast` (nothing is imported or run). Each
`import minispeech.x` and `from minispeech.x import y` (relative forms too, and lazy
ones inside functions) becomes an arrow from one file to another: `from minispeech.x
import y` points at the file x/y.py when y is a module there, else at x (x.py, or
x/__init__.py for a package). A part is the first name after `minispeech.`: a folder
(`asr`, `core`) or a top-level file (`errors`, `cli`).

RULES: the parts each part may import, besides itself

| part                                 | may import                                  |
| ------------------------------------ | ------------------------------------------- |
| errors                               | nothing                                     |
| audio, metrics                       | errors                                      |
| nn                                   | audio (front ends), errors                  |
| data                                 | audio, errors                               |
| core                                 | data (the sampler), audio, errors           |
| training                             | core, data, errors; never a task            |
| asr, speaker, enhancement, tts       | core, nn, audio, data, metrics, errors      |
| diarization                          | the same + speaker (embeddings)             |
| speechlm                             | the same + asr (encoder, tokenizer)         |
| nemo                                 | every task and all a task may import        |
| command_line.py (module level)       | errors (the pieces every verb uses)         |
| cli.py (module level)                | errors, command_line: `--help` loads no torch |
| <task>/commands.py (module level)    | what its task may import, and command_line  |
| the command layer (lazily): cli.py,  | anything: inside a function, only when run  |
|   command_line.py, <task>/commands.py |                                             |
| __main__.py                          | cli                                         |

And also:
- No file imports the top-level `minispeech` package: its names are a lazy table that
  reaches every part, so such an arrow points up. Import the defining module instead.
- Only cli.py imports a `<task>/commands.py` (the verbs are the top of the stack), and
  the "module:function" strings of cli.VERBS (imported by name when a verb runs) name
  only cli.py or a `<task>/commands.py`.
- A package's `__init__.py` imports only its own folder. This is why the arrows Python
  adds by itself (importing `minispeech.data.manifest` runs `data/__init__.py` first)
  are left out of the graph: they stay inside the folder of the module named.
- No circles between files, counting lazy imports (an import under
  `if TYPE_CHECKING:` never runs and is not counted for circles, only for the rules).
- LAYERS numbers the parts bottom-up; the rules above may only point down it, so a
  forbidden arrow that points up is reported as "upward".
"""

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "minispeech"

_TASK = {"core", "nn", "audio", "data", "metrics", "errors"}
TASKS = ("asr", "speaker", "diarization", "enhancement", "tts", "speechlm")
# part -> the other parts it may import
ALLOWED = {
    "errors": set(),
    "audio": {"errors"},
    "metrics": {"errors"},
    "nn": {"audio", "errors"},
    "data": {"audio", "errors"},
    "core": {"data", "audio", "errors"},
    "training": {"core", "data", "errors"},
    "asr": _TASK,
    "speaker": _TASK,
    "enhancement": _TASK,
    "tts": _TASK,
    "diarization": _TASK | {"speaker"},
    "speechlm": _TASK | {"asr"},
    "nemo": _TASK | set(TASKS),
    "command_line": {"errors"},
    "cli": {"errors", "command_line"},
    "__main__": {"cli"},
}
# the command line: may import anything inside a function
COMMAND_LAYER = ("minispeech.cli", "minispeech.command_line")
# bottom-up: an arrow may only point to a lower layer (checked on ALLOWED itself)
LAYERS = {
    "errors": 0,
    "command_line": 1,
    "audio": 1,
    "metrics": 1,
    "nn": 2,
    "data": 2,
    "core": 3,
    "training": 4,
    "asr": 4,
    "speaker": 4,
    "enhancement": 4,
    "tts": 4,
    "diarization": 5,
    "speechlm": 5,
    "nemo": 6,
    "cli": 7,
    "__main__": 8,
}


@dataclass(frozen=True)
class Arrow:
    source: str  # importing module, e.g. "minispeech.asr.ctc_model"
    target: str  # imported module, e.g. "minispeech.asr.ctc"
    line: int  # line of the import statement in the source file
    lazy: bool  # inside a function: runs only when the function is called
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs


def module_files() -> dict[str, Path]:
    """Dotted module name -> file; a package is named by its folder (its __init__)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def part(module: str) -> str:
    """ "minispeech.asr.ctc" -> "asr"; "minispeech.cli" -> "cli"; the root -> ""."""
    names = module.split(".")
    return names[1] if len(names) > 1 else ""


def is_commands(module: str) -> bool:
    return module.endswith(".commands") and part(module) in TASKS


def resolve(base: str, name: str | None) -> str | None:
    """The file that `from base import name` (or `import base`, name None) reaches."""
    if base != "minispeech" and not base.startswith("minispeech."):
        return None
    if name is not None and f"{base}.{name}" in MODULES:
        return f"{base}.{name}"
    while base not in MODULES:  # a name that is no file (yet): its nearest package
        base = base.rsplit(".", 1)[0]
    return base


class _ImportVisitor(ast.NodeVisitor):
    def __init__(self, module: str):
        self.module, self.arrows = module, []
        self.depth, self.typing = 0, 0  # inside functions / TYPE_CHECKING blocks

    def _add(self, node, target):
        if target is not None:
            lazy, typing = self.depth > 0, self.typing > 0
            self.arrows.append(Arrow(self.module, target, node.lineno, lazy, typing))

    def visit_Import(self, node):
        for alias in node.names:
            self._add(node, resolve(alias.name, None))

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:  # relative: level 1 is the package holding this module
            package = self.module
            if not is_package(package):
                package = package.rsplit(".", 1)[0]
            package = package.rsplit(".", node.level - 1)[0]
            base = f"{package}.{base}" if base else package
        for alias in node.names:
            self._add(node, resolve(base, alias.name))

    def _in_function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _in_function

    def visit_If(self, node):
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            self.typing += 1
            for child in node.body:
                self.visit(child)
            self.typing -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)


def collect_arrows() -> list[Arrow]:
    arrows = []
    for module, path in MODULES.items():
        visitor = _ImportVisitor(module)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        arrows += [a for a in visitor.arrows if a.target != module]
    return sorted(set(arrows), key=lambda a: (a.source, a.line, a.target))


ARROWS = collect_arrows()


def where(arrow: Arrow) -> str:
    path = MODULES[arrow.source].relative_to(REPO)
    how = " (lazily)" if arrow.lazy else ""
    return f"{path}:{arrow.line} imports {arrow.target}{how}"


def why_forbidden(arrow: Arrow) -> str | None:
    """None when the arrow is allowed, else the rule it breaks."""
    source, target = part(arrow.source), part(arrow.target)
    if arrow.target == "minispeech":
        return "the top-level package is a lazy table of every part: import the module"
    if is_commands(arrow.target) and arrow.source != "minispeech.cli":
        return "only cli.py imports a task's commands.py"
    if is_package(arrow.source) and part(arrow.source) and source != target:
        return f"{source}/__init__.py may re-export only from its own folder"
    if (arrow.source in COMMAND_LAYER or is_commands(arrow.source)) and arrow.lazy:
        return None  # the command layer imports anything, inside its functions
    if is_commands(arrow.source) and arrow.target == "minispeech.command_line":
        return None  # a task's verbs share the command line's pieces
    if source == target:
        return None
    allowed = ALLOWED.get(source)
    if allowed is None:
        return f"part {source!r} has no row in ALLOWED: add one"
    if target in allowed:
        return None
    direction = "upward " if LAYERS.get(target, 99) > LAYERS[source] else ""
    may = ", ".join(sorted(allowed)) or "nothing of minispeech"
    if is_commands(arrow.source):
        may += " at module level (anything inside a function)"
    return f"{direction}arrow {source} -> {target}: {source} may import {may}"


def find_cycles(arrows: list[Arrow]) -> list[tuple[list[str], set[str]]]:
    """Each group of files that reach one another (Tarjan's strongly connected
    components), with a shortest circle through it as a closed path."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for arrow in arrows:
        graph[arrow.source].add(arrow.target)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):  # the package has a few hundred files: recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(set(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [(_shortest_circle(graph, group), group) for group in groups]


def _shortest_circle(graph, group: set[str]) -> list[str]:
    """A shortest path from the group's first file back to itself, inside the group."""
    start = min(group)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & group):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append(path + [nxt])
    raise AssertionError(f"no circle in {group}")


def test_the_source_was_read():
    assert "minispeech.asr.ctc_model" in MODULES and "minispeech.asr" in MODULES
    assert any(a.lazy for a in ARROWS) and any(not a.lazy for a in ARROWS)
    assert resolve("minispeech.asr", "ctc_model") == "minispeech.asr.ctc_model"
    assert resolve("minispeech.asr", "ctc_loss") == "minispeech.asr"  # a name
    assert resolve("torch", "nn") is None


def test_every_part_has_a_rule():
    parts = {part(m) for m in MODULES} - {""}
    assert parts <= set(ALLOWED), (
        f"parts without a row in ALLOWED: {parts - set(ALLOWED)}"
    )


def test_the_rules_point_down():
    """The table itself has no upward arrow, so it can hold no circle between parts."""
    up = [
        f"{source} (layer {LAYERS[source]}) -> {target} (layer {LAYERS[target]})"
        for source, targets in ALLOWED.items()
        for target in targets
        if LAYERS[target] >= LAYERS[source]
    ]
    assert not up, "ALLOWED points up or sideways:\n" + "\n".join(up)


def test_no_forbidden_arrow():
    broken = [f"{where(a)}: {why}" for a in ARROWS if (why := why_forbidden(a))]
    assert not broken, f"{len(broken)} forbidden imports:\n" + "\n".join(broken)


def test_verbs_name_the_command_layer():
    """cli.VERBS holds "module:function" strings: imports that no arrow above shows."""
    tree = ast.parse(MODULES["minispeech.cli"].read_text(encoding="utf-8"))
    verbs = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "VERBS"
    )
    targets = [ast.literal_eval(value)[0] for value in verbs.values]
    wrong = [
        target
        for target in targets
        if not (
            target.startswith("minispeech.cli:") or is_commands(target.split(":")[0])
        )
    ]
    assert targets and not wrong, (
        f"VERBS must point at cli.py or a commands.py: {wrong}"
    )


def test_no_circle_between_files():
    counted = [a for a in ARROWS if not a.typing_only]
    cycles = find_cycles(counted)
    lines = []
    for circle, group in cycles:
        lines.append(f"circle {' -> '.join(circle)}; the arrows among these files:")
        inside = [a for a in counted if a.source in group and a.target in group]
        lines += [f"    {where(arrow)}" for arrow in inside]
    assert not cycles, f"{len(cycles)} import circles:\n" + "\n".join(lines)


def test_the_checks_catch_what_they_should():
    """The rules and the circle finder on made-up arrows."""
    assert (
        why_forbidden(
            Arrow("minispeech.nn.attention", "minispeech.audio", 1, False, False)
        )
        is None
    )
    upward = why_forbidden(
        Arrow("minispeech.data.manifest", "minispeech.core.config", 1, False, False)
    )
    assert upward.startswith("upward arrow data -> core")
    task_to_task = Arrow(
        "minispeech.training.loop", "minispeech.asr.ctc_decoding", 3, True, False
    )
    assert "training may import core, data, errors" in why_forbidden(task_to_task)
    cli_lazy = Arrow("minispeech.cli", "minispeech.training.loop", 1, True, False)
    cli_eager = Arrow("minispeech.cli", "minispeech.training.loop", 1, False, False)
    assert why_forbidden(cli_lazy) is None and why_forbidden(cli_eager)
    made_up = [
        Arrow(
            "minispeech.asr.ctc_decoding", "minispeech.asr.alignment", 1, False, False
        ),
        Arrow("minispeech.asr.alignment", "minispeech.asr.ctc_model", 1, True, False),
        Arrow(
            "minispeech.asr.ctc_model", "minispeech.asr.ctc_decoding", 1, False, False
        ),
    ]
    circles = [circle for circle, _ in find_cycles(made_up)]
    assert circles == [
        [
            "minispeech.asr.alignment",
            "minispeech.asr.ctc_model",
            "minispeech.asr.ctc_decoding",
            "minispeech.asr.alignment",
        ]
    ]
