"""The local-server fixture's own logic: what it reports when parts are missing, and skip versus fail."""

from __future__ import annotations

import llm_server
import pytest


def test_missing_server_parts_are_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_server, "SERVER_MODULES", ("llama_cpp_not_here",))
    reason = llm_server.missing_parts()
    assert reason is not None
    assert "missing llama_cpp_not_here" in reason and "make llm-server" in reason


def test_without_the_requirement_an_unavailable_server_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABMIND_REQUIRE_LLM_SERVER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no local OpenAI-compatible server: port busy"):
        llm_server._unavailable("port busy")


def test_with_the_requirement_an_unavailable_server_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABMIND_REQUIRE_LLM_SERVER", "1")
    with pytest.raises(pytest.fail.Exception, match=r"LABMIND_REQUIRE_LLM_SERVER=1 but .*port busy"):
        llm_server._unavailable("port busy")


def test_the_server_command_is_loopback_only_with_two_threads(tmp_path) -> None:
    cmd = llm_server.server_command(tmp_path / "m.gguf", 4321)
    assert cmd[1:3] == ["-m", "llama_cpp.server"]
    options = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert options["--host"] == "127.0.0.1" and options["--port"] == "4321"
    assert options["--n_threads"] == "2" and int(options["--n_ctx"]) >= 4096
