"""deploy/Dockerfile installs the image with the very script CI runs, gets torch's CPU build, and
starts the code server the workspace expects. (No Docker engine here: the image is not built.)"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex

import yaml

from hvla_platform_tests.deploy.conftest import DEPLOY, REPO_ROOT


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as ``(KEYWORD, arguments)``, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        buf += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            keyword, _, args = buf.strip().partition(" ")
            out.append((keyword.upper(), " ".join(args.split())))
            buf = ""
    return out


DOCKERFILE = instructions((DEPLOY / "Dockerfile").read_text())


def commands(path) -> list[str]:
    """The non-comment, non-blank lines of a shell script."""
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_ci_entrypoint_runs_install_sh():
    assert "./scripts/test.sh -q" in commands(REPO_ROOT / ".ci" / "run")
    assert "./scripts/install.sh" in commands(REPO_ROOT / "scripts" / "test.sh")


def test_image_runs_the_same_install_script():
    kinds = [k for k, _ in DOCKERFILE]
    copy = kinds.index("COPY")
    (run_idx, install), = [(i, a) for i, (k, a) in enumerate(DOCKERFILE) if k == "RUN" and "install.sh" in a]
    assert DOCKERFILE[0][0] == "FROM" and re.match(r"python:3\.11-slim-bookworm$", DOCKERFILE[0][1])
    assert ("WORKDIR", "/opt/hvla") in DOCKERFILE and DOCKERFILE[copy] == ("COPY", ". /opt/hvla") and copy < run_idx
    words = shlex.split(install.split("&&")[0])
    assert words[-1] == "./scripts/install.sh"  # the script itself, from the copied checkout
    assert {"HVLA_PYTHON=python3.11", "HVLA_VENV=/opt/hvla/.venv", "HVLA_SKIP_TEST_TOOLS=1"} <= set(words)
    # install.sh really reads those two variables
    script = (REPO_ROOT / "scripts" / "install.sh").read_text()
    assert '"${HVLA_VENV:-.venv}"' in script and '"${HVLA_PYTHON:-python3.11}"' in script
    # ... and the test-only tools are installed only inside the HVLA_SKIP_TEST_TOOLS guard
    lines = commands(REPO_ROOT / "scripts" / "install.sh")
    guards = [i for i, ln in enumerate(lines) if ln == 'if [ "${HVLA_SKIP_TEST_TOOLS:-0}" != 1 ]; then']
    blocks = [(g, next(i for i in range(g, len(lines)) if lines[i] == "fi" and i > g + 1)) for g in guards]
    for tool in ("./scripts/install_ui.sh", "./scripts/install_openpi_client.sh", "need_apt+=(chromium)"):
        at = next(i for i, ln in enumerate(lines) if tool in ln)
        assert any(g < at < end for g, end in blocks), tool
    env = dict(kv.split("=", 1) for kv in shlex.split(next(a for k, a in DOCKERFILE if k == "ENV")))
    assert env["PATH"].startswith("/opt/hvla/.venv/bin:")


def test_torch_comes_from_the_cpu_index():
    args = dict(a.split("=", 1) for k, a in DOCKERFILE if k == "ARG")
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    install = next(a for k, a in DOCKERFILE if k == "RUN" and "install.sh" in a)
    assert 'PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}"' in install
    # install.sh installs torch on its own, first, so nothing later pulls a CUDA build
    lines = commands(REPO_ROOT / "scripts" / "install.sh")
    torch = next(i for i, ln in enumerate(lines) if ln.startswith('pipq "torch=='))
    reqs = next(i for i, ln in enumerate(lines) if "requirements/runtime.txt" in ln and ln.startswith("pipq"))
    assert torch < reqs


def test_image_serves_the_code_location_with_the_production_instance():
    cmd = json.loads(next(a for k, a in DOCKERFILE if k == "CMD"))
    ws = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert cmd[:3] == ["dagster", "code-server", "start"] and cmd[cmd.index("-p") + 1] == str(ws["port"])
    assert cmd[cmd.index("-h") + 1] == "0.0.0.0" and cmd[cmd.index("--location-name") + 1] == ws["location_name"]
    assert ("EXPOSE", str(ws["port"])) in DOCKERFILE
    setup = next(a for k, a in DOCKERFILE if k == "RUN" and "dagster.yaml" in a)
    assert 'cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"' in setup
    # the processes run as an unprivileged user (set after the last RUN)
    kinds = [k for k, _ in DOCKERFILE]
    last_user = len(kinds) - 1 - kinds[::-1].index("USER")
    assert DOCKERFILE[last_user][1] not in ("root", "0") and last_user > len(kinds) - 1 - kinds[::-1].index("RUN")


def test_build_context_leaves_local_state_out():
    ignored = set(commands(DEPLOY / "Dockerfile.dockerignore"))
    assert {".git", ".venv", ".hvla", "**/__pycache__"} <= ignored
    assert not ignored & {"scripts", "requirements", "hvla_platform", "deploy", "pyproject.toml"}


def test_deploy_libraries_are_pinned_to_the_installed_dagster():
    pins = dict(ln.split("==") for ln in commands(REPO_ROOT / "requirements" / "runtime.txt") if "==" in ln)
    core = pins["dagster"]
    assert importlib.metadata.version("dagster") == core
    for lib in ("dagster-postgres", "dagster-k8s"):  # the official chart's images need both in ours
        assert pins[lib] == importlib.metadata.version(lib), lib
        requires = importlib.metadata.requires(lib)
        assert f"dagster=={core}" in {r.split(";")[0].replace(" ", "") for r in requires}, (lib, requires)
