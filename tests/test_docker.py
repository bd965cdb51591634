"""docker/ kept correct without a Docker engine (none runs on CI machines)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_config_validates() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it from Debian)")
    subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "--quiet"],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_stack_has_its_services_and_order() -> None:
    services = compose()["services"]
    assert {"postgresql", "temporal", "setup", "ui", "worker"} <= set(services)
    assert (
        services["worker"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    )
    assert services["worker"]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    for name, service in services.items():
        if "image" in service:
            assert re.search(r":\d", service["image"]), f"{name} pins its image version"


def test_search_attributes_registered_and_secrets_passed_by_reference() -> None:
    services = compose()["services"]
    setup = " ".join(services["setup"]["command"])
    assert (
        "--name AgentName --type Keyword" in setup and "--name AgentStatus --type Keyword" in setup
    )
    env = services["worker"]["environment"]
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        assert env[key] == f"${{{key}:-}}", f"{key} comes from the host, never a literal"
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_dockerfile_runs_the_worker_as_a_user_from_the_lock() -> None:
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["durable-agent", "worker"]' in text
    assert "uv sync --frozen" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY {path}: missing from the repository"
