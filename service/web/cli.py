"""A command group of `devdir`: Litestar's CLI plugin that adds one click group to Litestar's CLI, the way
advanced-alchemy adds `database` (`devdir users ...`, `devdir workers ...`)."""

from __future__ import annotations

from click import Group
from litestar.plugins import CLIPluginProtocol


class CommandGroup(CLIPluginProtocol):
    def __init__(self, group: Group) -> None:
        self.group = group

    def on_cli_init(self, cli: Group) -> None:
        cli.add_command(self.group)
