"""Worktrees, diffs and scope rules."""
