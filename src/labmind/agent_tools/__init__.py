"""The agent tools: the verbs an interactive agent (Claude Code, Codex, Cursor, a person) drives a lab with.

The lab runs with `--brain agent` (labmind.brains.agent). For every experiment it wants, that brain publishes
a work offer in an inbox under `.labmind/agent/` and waits; agents claim offers, edit the experiment's
worktree, and submit their idea through `labmind agent ...` or the `labmind mcp` server. labmind keeps the
rigor: it computes the diff with git, runs the change in its sandbox, and judges it.

Modules: `ops` (the operations agents call),
`records` (experiments as agents read them), `brief` (plain-text renderings), `launch` (start/stop a lab),
`server` (the same operations as MCP tools). The file protocol between lab and agents, the inbox, is the agent
brain's and lives beside it (`labmind.brains.agent_inbox`).
"""
