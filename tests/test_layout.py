"""The package's shape: installed code cannot be shadowed, and imports point one way."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from durable_agent.client import AgentClient

from .processes import ROOT, start_worker, stop

PACKAGE = ROOT / "durable_agent"
SOURCE_FOLDERS = (
    "durable_agent",
    "workflows",
    "activities",
    "tests",
    "bench",
    "faults",
    "examples",
)
"""Every folder of the repository's Python code."""

# Layers, lowest first: a module may import its own layer and the ones below, never above.
LAYERS = {
    "wire": 0,
    "agents": 1,  # the authoring API (durable_agent/authoring/), rendering, telemetry
    "loop": 2,
    "activities": 2,
    "edges": 3,
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "durable_agent" or len(parts) == 1:
        return "edges"  # the package's __init__ re-exports the public API
    top = parts[1]
    if top == "wire":
        return "wire"
    if top == "workflows":
        return "loop"
    if top == "activities":
        return "activities"
    # telemetry: both the loop and the activities record metrics through it; it imports only wire.
    # _causes: pure, the loop's failures and the edges' errors name the same innermost cause.
    # live: the model activity publishes deltas through it and the edges read them; it imports
    # only wire.
    if top in {"authoring", "_render", "_causes", "_output", "telemetry", "live"}:
        return "agents"
    return "edges"


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """The package's modules that `path` imports (`from a import b` is `a.b` when b is one)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for module_name, level, names in import_statements()[str(path)]:
        if module_name is None:  # import a, b
            found.update(names)
            continue
        base = module_name
        if level:
            parts = package.split(".")
            parts = parts[: len(parts) - level + 1]
            base = ".".join([*parts, module_name] if module_name else parts)
        for alias in names:
            found.add(f"{base}.{alias}" if f"{base}.{alias}" in known else base)
    return found & known


# Each statement as (module, level, names): `import a, b` is (None, 0, [a, b]).
_PARSE = """
import ast, json, sys
out = {}
for path in json.load(sys.stdin):
    rows = []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            rows.append([None, 0, [a.name for a in node.names]])
        elif isinstance(node, ast.ImportFrom):
            rows.append([node.module or "", node.level, [a.name for a in node.names]])
    out[path] = rows
json.dump(out, sys.stdout)
"""


@functools.cache
def import_statements() -> dict[str, list[tuple[str | None, int, list[str]]]]:
    """Every import statement of the repository's Python files, parsed in a process of its own:
    CPython 3.11's AST constructor keeps one recursion counter per interpreter, and a workflow
    sandbox compiling modules in another thread of the test process at the same moment breaks
    it (SystemError: AST constructor recursion depth mismatch, seen in CI under pytest-xdist)."""
    paths = sorted(str(p) for folder in SOURCE_FOLDERS for p in (ROOT / folder).rglob("*.py"))
    paths += [str(p) for p in modules().values() if str(p) not in paths]
    done = subprocess.run(
        [sys.executable, "-c", _PARSE],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        check=True,
    )
    parsed: dict[str, list[tuple[str | None, int, list[str]]]] = json.loads(done.stdout)
    return parsed


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for dirpath, _, filenames in os.walk(PACKAGE, followlinks=True):
        for filename in filenames:
            if filename.endswith(".py"):
                path = Path(dirpath) / filename
                parts = path.relative_to(ROOT).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                found[name] = path
    return found


def test_imports_point_one_way() -> None:
    """Edges -> loop / activities -> agents -> wire: nothing imports a layer above its own,
    and the loop and the activities never import each other."""
    found = modules()
    assert "durable_agent.workflows.agent_workflow" in found
    assert "durable_agent.activities.model" in found
    wrong: list[str] = []
    for module, path in found.items():
        here = layer_of(module)
        for target in imports_of(path, module, set(found)):
            there = layer_of(target)
            sideways = {here, there} == {"loop", "activities"}
            if LAYERS[there] > LAYERS[here] or sideways:
                wrong.append(f"{module} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_nothing_imports_the_top_level_folders() -> None:
    """`workflows/` and `activities/` are reached only as `durable_agent.workflows` and
    `durable_agent.activities`: a top-level import would load a second copy, and a user's own
    package of that name would shadow it."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in SOURCE_FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        for name in _top_level_imports(path)
        if name.split(".")[0] in {"workflows", "activities"}
    ]
    assert not offenders, offenders


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for module_name, level, imported in import_statements()[str(path)]:
        if module_name is None:
            names.update(imported)
        elif level == 0 and module_name:
            names.add(module_name)
    return names


async def test_a_user_project_with_its_own_workflows_and_activities_is_served(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The usual Temporal layout has `workflows/` and `activities/` packages of its own; run
    from such a project, `durable-agent worker` still serves our AgentWorkflow and activities."""
    for package in ("workflows", "activities"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"OWNER = 'the user project ({package})'\n")
        # Same module names as ours: importing them by the top-level name would break.
        (tmp_path / package / "agent_workflow.py").write_text("raise ImportError('shadowed')\n")
        (tmp_path / package / "model.py").write_text("raise ImportError('shadowed')\n")
    (tmp_path / "my_agents.py").write_text(
        textwrap.dedent(
            """
            import workflows, activities  # the project's own packages
            from durable_agent import Agent, ScriptedModel, tool

            assert workflows.OWNER.startswith("the user project")

            @tool
            def owner() -> str:
                \"\"\"Who owns the workflows package.\"\"\"
                return workflows.OWNER

            agents = [Agent("shadow", model=ScriptedModel("shadow", ["Hello."]), tools=[owner])]
            """
        )
    )
    address = dev_env.client.service_client.config.target_host
    queue = f"shadow-{uuid.uuid4()}"
    log = tmp_path / "worker.log"
    worker = start_worker(address, queue, log, agents="my_agents:agents", cwd=tmp_path)
    try:
        client = AgentClient(dev_env.client, queue)
        handle = await client.start("shadow", "hi")
        result = await asyncio.wait_for(handle.result(), 60)
        assert result.final_text == "Hello."
    finally:
        stop(worker)
    stderr = log.with_suffix(".stderr").read_text()
    assert "shadowed" not in stderr, stderr
