"""The layout the README promises: one folder per pattern, found by the registry, and a
core that names none of them.

"The core" is `bench/` and `common/`. Claims (`bench/claims.py`, `bench/claims.toml`) are
about named patterns and may name them; scenario files too. Prose may use a pattern as an
example, so comments and docstrings are not scanned: code and string literals are.
"""

from __future__ import annotations

import ast
import io
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from bench.registry import PATTERNS, pattern_folder

PROJECT = Path(__file__).resolve().parent.parent
CORE = [PROJECT / "bench", PROJECT / "common"]
MAY_NAME_PATTERNS = {PROJECT / "bench" / "claims.py"}
FOLDERS = sorted({pattern_folder(pattern) for pattern in PATTERNS.values()})


def core_files() -> list[Path]:
    return sorted(
        path
        for root in CORE
        for path in root.rglob("*.py")
        if path not in MAY_NAME_PATTERNS and "__pycache__" not in path.parts
    )


def docstring_lines(source: str) -> set[int]:
    """The lines of every docstring in `source` (module, class and function)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def pattern_mentions(path: Path, root: Path = PROJECT) -> list[str]:
    """Where the code of `path` names a pattern: a string literal that is a pattern's name
    or folder, or says `patterns.<folder>`; a name that is a pattern's folder."""
    source = path.read_text()
    skip = docstring_lines(source)
    names = set(PATTERNS) | set(FOLDERS)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.start[0] in skip:
            continue
        text = token.string
        if token.type == tokenize.STRING:
            try:
                value = str(ast.literal_eval(text))
            except ValueError:  # an f-string: its literal parts are what it names
                value = text
            if value in names or any(f"patterns.{folder}" in value for folder in FOLDERS):
                found.append(f"{path.relative_to(root)}:{token.start[0]}: {text}")
        elif token.type == tokenize.NAME and text in FOLDERS:
            found.append(f"{path.relative_to(root)}:{token.start[0]}: {text}")
    return found


def imports_of(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


def test_the_core_names_no_pattern():
    mentions = [line for path in core_files() for line in pattern_mentions(path)]
    assert mentions == []


def test_the_scan_finds_a_pattern_named_in_core_code(tmp_path):
    """The check above is not vacuous: a core module that branched on a pattern is caught."""
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        '"""Says rest in prose, which is allowed."""\n\n'
        'if name == "rest" or module == "patterns.grpc.server":  # so may a comment: sse\n'
        "    import websocket\n"
    )
    assert pattern_mentions(sneaky, tmp_path) == [
        'sneaky.py:3: "rest"',
        'sneaky.py:3: "patterns.grpc.server"',
        "sneaky.py:4: websocket",
    ]


def test_every_pattern_folder_is_registered_and_complete():
    folders = sorted(
        path.name
        for path in (PROJECT / "patterns").iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    )
    assert folders == FOLDERS
    for folder in folders:
        for part in ("entry.py", "server.py", "driver.py", "NOTES.md"):
            assert (PROJECT / "patterns" / folder / part).is_file(), f"{folder}/{part}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_pattern_folder_imports_no_other_pattern_folder(folder):
    for path in (PROJECT / "patterns" / folder).glob("*.py"):
        others = {
            module
            for module in imports_of(path)
            if module.startswith("patterns.") and module.split(".")[1] != folder
        }
        assert others == set(), f"{path.relative_to(PROJECT)} imports {others}"


def test_servers_and_the_runner_share_only_the_common_base():
    """Servers import `common`, never `bench`; `common` imports neither side; the core
    reaches pattern folders only through the registry."""
    for path in (PROJECT / "patterns").glob("*/server.py"):
        assert not {m for m in imports_of(path) if m.split(".")[0] == "bench"}, path
    for path in (PROJECT / "common").rglob("*.py"):
        assert not {m for m in imports_of(path) if m.split(".")[0] in ("bench", "patterns")}, path
    for path in core_files():
        reached = {m for m in imports_of(path) if m.split(".")[0] == "patterns"}
        assert reached <= {"patterns"}, f"{path.relative_to(PROJECT)} imports {reached}"


def test_a_pattern_folder_lists_the_system_packages_make_installs(tmp_path):
    """scripts/install-system-packages.sh reads patterns/<folder>/system-packages: a new
    pattern that needs a program says so in its folder, not in the script."""
    (tmp_path / "scripts").mkdir()
    script = (PROJECT / "scripts" / "install-system-packages.sh").read_text()
    (tmp_path / "scripts" / "install.sh").write_text(script)
    (tmp_path / "patterns" / "newone").mkdir(parents=True)
    (tmp_path / "patterns" / "newone" / "system-packages").write_text(
        "# a comment\nno-such-program-here its-debian-package\n"
    )
    bin_dir = tmp_path / "bin"  # a PATH without apt-get: the script only reports
    bin_dir.mkdir()
    for tool in ("sh", "id", "dirname", "python3"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    completed = subprocess.run(
        ["sh", str(tmp_path / "scripts" / "install.sh")],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir)},
        timeout=30,
        check=True,
    )
    assert "missing system packages:" in completed.stderr
    assert " its-debian-package" in completed.stderr
    assert "a comment" not in completed.stderr


def test_a_request_response_server_carries_no_push_machinery_into_its_memory():
    """Server memory is a reported figure: the shared runtime must not load what only push
    servers use (the event source brings numpy and the HDR histogram, about 11 MB)."""
    modules = sorted(
        {pattern.server_module for pattern in PATTERNS.values() if pattern.kind != "push"}
    )
    probe = "import importlib, sys\n" + "".join(
        f"importlib.import_module({module!r})\n" for module in modules
    )
    probe += "print(sorted(m for m in ('numpy', 'hdrh', 'common.events') if m in sys.modules))"
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert modules and completed.stdout.strip() == "[]"
