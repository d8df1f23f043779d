"""What the Containerfile runs, read from the Containerfile itself: the runtime stage's ENV and its command, and
that command as a process here."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

CONTAINERFILE = Path(__file__).parents[2] / "Containerfile"
BIN = Path(sys.executable).parent


def runtime_stage() -> str:
    text = CONTAINERFILE.read_text()
    return text[text.rindex("\nFROM ") :].replace("\\\n", " ")


def command() -> list[str]:
    stage = runtime_stage()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", stage, re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*\])$", stage, re.MULTILINE)
    assert entrypoint, "the runtime stage needs an exec-form ENTRYPOINT"
    assert cmd, "the runtime stage needs an exec-form CMD"
    return [*json.loads(entrypoint[1]), *json.loads(cmd[1])]


def environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.*)$", runtime_stage(), re.MULTILINE):
        for pair in shlex.split(line):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def production_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The image's command and environment, as a process here: the virtualenv's bin in PATH, the port moved."""
    argv = command()
    if shutil.which("tini") is None:  # tini only forwards signals and reaps; devdir handles SIGTERM itself
        argv = argv[2:]
    env = environment() | {"PATH": f"{BIN}:{os.environ['PATH']}", "GRANIAN_PORT": str(port)}
    env["GRANIAN_HOST"] = "127.0.0.1"
    return argv, env
