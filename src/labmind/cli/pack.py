"""`labmind pack <name>`: build tasks from benchmark checkouts. A small registry: each pack registers its
command (a function) or its own verb group (a Typer app) with one `register` line below."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

pack_app = typer.Typer(help="Make labmind tasks from upstream benchmark checkouts (docs/packs/).",
                       no_args_is_help=True)


@pack_app.callback()
def _group() -> None:
    """Make labmind tasks from upstream benchmark checkouts (docs/packs/)."""
    # A callback keeps `pack` a group of verbs even while a single pack is registered.


def register(name: str, target: typer.Typer | Callable[..., Any]) -> None:
    """Add `labmind pack NAME`: a Typer app becomes a verb group, a function a single command."""
    if isinstance(target, typer.Typer):
        pack_app.add_typer(target, name=name)
    else:
        pack_app.command(name)(target)


# Pack modules import only typer and labmind's CLI helpers at this point; heavy imports wait for the command.
from labmind.packs.nanochat.cli import nanochat  # noqa: E402

register("nanochat", nanochat)
from labmind.packs.kernels.cli import kernels_app  # noqa: E402

register("kernels", kernels_app)
from labmind.packs.speedrun.cli import speedrun  # noqa: E402

register("speedrun", speedrun)
