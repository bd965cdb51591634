"""docker/ kept correct without a Docker engine (none runs on CI machines).

The compose file is validated by `docker compose config` (or `docker-compose config`) when a
client is installed; everything else reads the files as text, so no YAML parser is needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"

PROVIDER_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
SEARCH_ATTRIBUTES = (
    "--name AgentName --type Keyword --name AgentStatus --type Keyword"
    " --name AgentParent --type Keyword --name AgentTokens --type Int"
)


# --- Dockerfile -------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def copy_sources() -> list[str]:
    sources = []
    for keyword, args in instructions():
        if keyword == "COPY":
            words = [w for w in args.split() if not w.startswith("--")]
            sources += words[:-1]
    return sources


def first(keyword: str, contains: str = "") -> int:
    return next(
        i for i, (k, args) in enumerate(instructions()) if k == keyword and contains in args
    )


def test_dockerfile_entrypoint_is_the_worker_with_the_example_by_default() -> None:
    found = dict(instructions())
    assert found["FROM"].startswith("python:3.11-slim")
    assert json.loads(found["ENTRYPOINT"]) == ["durable-agent", "worker"]
    cmd = json.loads(found["CMD"])
    assert cmd[0] == "--agents" and len(cmd) == 2
    assert re.fullmatch(r"[\w.]+:\w+", cmd[1]), f"{cmd[1]} must look like pkg.module:attr"
    if (ROOT / "examples").exists():  # the examples are the lead's; check the default loads
        from durable_agent.worker import load_agents

        assert load_agents(cmd[1])


def test_dockerfile_installs_from_the_lock_with_a_pinned_uv_and_caches_dependencies() -> None:
    runs = [args for keyword, args in instructions() if keyword == "RUN"]
    assert any(re.search(r"pip install .*\buv==\d+\.\d+\.\d+", run) for run in runs)
    syncs = [run for run in runs if "uv sync" in run]
    assert len(syncs) == 2
    assert all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert "--no-install-project" in syncs[0] and "--no-install-project" not in syncs[1]
    # Layer caching: only the lock precedes the dependency install; the code comes after it.
    deps = first("RUN", "--no-install-project")
    assert first("COPY", "uv.lock") < deps
    assert first("COPY", "durable_agent") > deps
    found = instructions()
    project_sync = max(i for i, (k, args) in enumerate(found) if k == "RUN" and "uv sync" in args)
    last_copy = max(i for i, (k, _) in enumerate(found) if k == "COPY")
    assert project_sync > last_copy, "the project is installed after all of its code is copied"


def test_dockerfile_copies_what_the_project_build_needs() -> None:
    sources = {s.rstrip("/") for s in copy_sources()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel_packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    needed = {"pyproject.toml", "uv.lock", project["project"]["readme"], *wheel_packages}
    assert needed <= sources, f"the project sync needs {sorted(needed - sources)}"
    for required in ("durable_agent", "workflows", "activities", "pyproject.toml", "uv.lock"):
        assert (ROOT / required).exists()
    for source in sources:
        if source == "examples" and not (ROOT / "examples").exists():
            continue  # the lead adds examples/ separately
        assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    found = instructions()
    users = [args for keyword, args in found if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    last_user = max(i for i, (keyword, _) in enumerate(found) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in found[last_user:]), "RUN steps go before USER"


def test_dockerignore_keeps_local_state_out_but_not_the_sources() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", ".env"} <= patterns
    copied = {s.rstrip("/") for s in copy_sources()}
    assert not patterns & copied, f"ignored but copied: {sorted(patterns & copied)}"


# --- docker-compose.yml -----------------------------------------------------------------------


def services() -> dict[str, str]:
    """Each service's block of text, keyed by name (two-space indented keys under `services:`)."""
    text = COMPOSE.read_text()
    body = re.search(r"^services:\n(.*?)(?=^\S|\Z)", text, re.M | re.S)
    assert body, "no services: section"
    parts = re.split(r"^  ([\w-]+):\n", body.group(1), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def depends_on(block: str) -> dict[str, str]:
    return dict(re.findall(r"^      ([\w-]+):\n        condition: (\w+)$", block, re.M))


def environment(block: str) -> dict[str, str]:
    env = re.search(r"^    environment:\n((?:      .*\n)+)", block, re.M)
    assert env, "no environment"
    return dict(re.findall(r"^      ([A-Z_][A-Z0-9_]*):[ ]?(.*)$", env.group(1), re.M))


def compose_tool() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates(tmp_path: Path) -> None:
    tool = compose_tool()
    if tool is None:
        pytest.skip("no `docker compose` plugin nor docker-compose here (.ci/run installs one)")
    # A clean environment: every variable the file uses must have a default or be optional.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [*tool, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "is not set" not in done.stderr, done.stderr
    assert "examples.support:agents" in done.stdout  # the AGENTS default is interpolated


def test_stack_starts_in_order() -> None:
    found = services()
    assert {"postgresql", "schema", "temporal", "setup", "ui", "worker"} <= set(found)
    assert depends_on(found["schema"]) == {"postgresql": "service_healthy"}
    assert depends_on(found["temporal"]) == {"schema": "service_completed_successfully"}
    assert depends_on(found["setup"]) == {"temporal": "service_healthy"}
    assert depends_on(found["worker"]) == {"setup": "service_completed_successfully"}
    for name in ("postgresql", "temporal"):  # what others wait on as service_healthy
        assert "    healthcheck:\n" in found[name], f"{name} needs a healthcheck"
    worker = found["worker"]
    assert "      context: ..\n      dockerfile: docker/Dockerfile\n" in worker
    assert environment(worker)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert re.search(r"^      - \"8080:8080\"$", found["ui"], re.M)


def test_images_are_pinned() -> None:
    images = re.findall(r"^    image: (\S+)$", COMPOSE.read_text(), re.M)
    assert len(images) >= 5
    for image in images:
        tag = image.partition(":")[2]
        assert re.fullmatch(r"v?\d+(\.\d+)+", tag), f"{image}: pin a version"  # prom/ has v
    server = [i for i in images if i.startswith("temporalio/server:")]
    tools = {i.partition(":")[2] for i in images if i.startswith("temporalio/admin-tools:")}
    assert len(server) == 1 and tools == {server[0].partition(":")[2]}, "tools match the server"


def test_setup_registers_the_namespace_and_search_attributes() -> None:
    setup = services()["setup"]
    assert "temporal operator namespace create --namespace default" in setup
    assert "temporal operator search-attribute create" in setup
    assert SEARCH_ATTRIBUTES in " ".join(setup.replace("\\\n", " ").split())
    for name in ("AgentName", "AgentStatus", "AgentParent", "AgentTokens"):
        assert f"grep -qw {name}" in setup, f"an existing {name} counts as success"
    assert environment(setup)["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_provider_keys_come_from_the_host_never_from_the_file() -> None:
    text = COMPOSE.read_text()
    env = environment(services()["worker"])
    for var in PROVIDER_VARS:
        assert var in env, f"the worker gets {var}"
        value = env[var]
        assert value == "" or re.fullmatch(rf"\$\{{{var}(:?-)?\}}", value), (
            f"{var}: pass it through from the host, never a value"
        )
        # Nowhere else either (`KEY: value` or `KEY=value`).
        for match in re.finditer(rf"{var}\s*[:=][ ]*(\S*)", text):
            assert match.group(1) in ("", f"${{{var}:-}}", f"${{{var}}}"), match.group(0)
    assert not re.search(r"sk-[A-Za-z0-9]", text), "something that looks like a key"


def test_bind_mounts_exist() -> None:
    mounts = re.findall(r"^      - (\.{1,2}/[^:]+):", COMPOSE.read_text(), re.M)
    assert mounts, "the Temporal dynamic config is mounted"
    for source in mounts:
        assert (DOCKER / source).exists(), f"{source} is mounted but missing"


def test_the_stop_grace_period_covers_the_drain_and_the_graceful_timeout() -> None:
    """Docker's SIGKILL comes after the worker's poll drain, its graceful timeout and a few
    seconds to report the calls it cancels."""
    from durable_agent._drain import POLL_DRAIN
    from durable_agent.worker import DEFAULT_GRACEFUL_TIMEOUT

    text = COMPOSE.read_text()
    graceful = re.search(r'DURABLE_AGENT_GRACEFUL_TIMEOUT: "(\d+)"', text)
    grace = re.search(r"stop_grace_period: (\d+)s", text)
    assert graceful and grace
    assert float(graceful[1]) == DEFAULT_GRACEFUL_TIMEOUT.total_seconds()
    assert int(grace[1]) >= float(graceful[1]) + 2 * POLL_DRAIN.total_seconds() + 5
