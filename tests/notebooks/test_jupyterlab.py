"""`make notebooks` opens the project's notebooks in a JupyterLab whose kernel is the project's environment.

The test runs the very command the Makefile target runs (read with ``make -n``, on a free port, with a
known token) and asks the server over its REST and kernel WebSocket APIs what it serves: both notebooks,
and a Python kernel that runs in this virtualenv and imports the project (what the notebooks need).
"""

import json
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.services import free_port, stop_group

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-notebooks-token"

pytestmark = pytest.mark.integration


def _make_notebooks_command(port: int) -> list[str]:
    dry_run = subprocess.run(
        ["make", "-n", "-s", "notebooks", f"NOTEBOOKS_PORT={port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in dry_run.splitlines() if " lab " in line]
    assert len(lines) == 1, dry_run
    return shlex.split(lines[0])


def _get(port: int, path: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _post(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _run_in_kernel(port: int, kernel_id: str, code: str, timeout: float = 60.0) -> str:
    """What ``code`` prints on stdout in the kernel (Jupyter messaging protocol over the server's WebSocket)."""
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
    }
    url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?token={TOKEN}"
    printed: list[str] = []
    with connect(url, open_timeout=30) as socket:
        socket.send(json.dumps(request))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(socket.recv(timeout=deadline - time.monotonic()))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream" and content["name"] == "stdout":
                printed.append(content["text"])
            elif kind == "error":
                pytest.fail(f"the kernel raised {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(printed)
    pytest.fail(f"the kernel did not finish {code!r} in {timeout:.0f} s")


def _wait_until_serving(proc: subprocess.Popen, port: int, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            _get(port, "/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer on port {port} in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def test_make_notebooks_serves_the_notebooks_with_the_project_kernel(tmp_path):
    port = free_port()
    command = _make_notebooks_command(port)
    log = tmp_path / "jupyter.log"
    env = {**os.environ, "JUPYTER_TOKEN": TOKEN, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_serving(proc, port, log)
        served = {item["name"] for item in _get(port, "/api/contents")["content"]}
        assert {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} <= served
        specs = _get(port, "/api/kernelspecs")
        python = specs["kernelspecs"][specs["default"]]["spec"]
        assert python["language"] == "python"
        kernel = _post(port, "/api/kernels", {"name": specs["default"]})
        printed = _run_in_kernel(port, kernel["id"], "import sys, eventpulse; print(sys.prefix)")
        assert Path(printed.strip()) == ROOT / ".venv"
        with pytest.raises(urllib.error.HTTPError) as refused:  # the token is required
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
        assert refused.value.code == 403
    finally:
        stop_group(proc)
