"""Typed clients generated from the API document, e.g. `uv run python tools/clients.py /tmp/clients` (needs `npx`).

It writes the document to OUTDIR/openapi.json, a Python client with openapi-python-client (a dev dependency) to
OUTDIR/python/devdir_client, TypeScript types with openapi-typescript to OUTDIR/ts/api.d.ts, and type-checks
tools/clients/usage.ts against them with `tsc --strict`. Each command is printed with its output; any warning or
error of a generator fails the run. Generated code is never committed: CI runs this on every push.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "clients"
PACKAGE = "devdir_client"  # OUTDIR/python/devdir_client: import it with OUTDIR/python on sys.path
OPENAPI_TYPESCRIPT = "openapi-typescript@7.13.0"
TYPESCRIPT = "typescript@5.9.3"
GENERATE = ["--meta", "none", "--fail-on-warning", "--overwrite", "--config"]
TSC = ["--noEmit", "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler"]
# npm's own notices (a package fetched into npx's cache, a deprecation) are not the generators': npm prints only
# its errors.
NPM_QUIET = {"npm_config_loglevel": "error", "npm_config_update_notifier": "false", "npm_config_fund": "false"}
COMPLAINT = re.compile(r"warn|error|unsupported|⚠", re.IGNORECASE)


def main(outdir: Path) -> None:
    document = write_document(outdir)
    python_client(document, outdir / "python")
    typescript_types(document, outdir / "ts")
    print(f"{outdir}: openapi.json, python/{PACKAGE}, ts/api.d.ts; ts/usage.ts type-checks")  # noqa: T201


def write_document(outdir: Path) -> Path:
    """The document as the app serves it at /schema/openapi.json (no database needed)."""
    from litestar.testing import TestClient

    from service.app import create_app
    from service.core.settings import Settings

    key = "a-key-for-the-document-only" * 2
    app = create_app(Settings(database_url="postgresql://unused", secret_key=key, log_requests=False))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line for the one request
    response = TestClient(app).get("/schema/openapi.json")  # no lifespan: nothing connects to a database
    response.raise_for_status()
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "openapi.json"
    path.write_text(json.dumps(response.json(), indent=2) + "\n")
    return path


def python_client(document: Path, outdir: Path) -> Path:
    """The Python client's package, generated from `document` into `outdir`."""
    generator = shutil.which("openapi-python-client")
    if generator is None:
        raise Missing("openapi-python-client is not installed (it is in the dev dependency group: uv sync)")
    package = outdir / PACKAGE
    config = HERE / "python-client.yaml"
    run([generator, "generate", "--path", str(document), "--output-path", str(package), *GENERATE, str(config)])
    return package


def typescript_types(document: Path, outdir: Path) -> None:
    """The TypeScript types of `document`, and tools/clients/usage.ts type-checked against them."""
    if shutil.which("npx") is None:
        raise Missing("npx is not installed (Node.js 18 or later)")
    outdir.mkdir(parents=True, exist_ok=True)
    run(["npx", "--yes", OPENAPI_TYPESCRIPT, str(document), "-o", str(outdir / "api.d.ts")])
    shutil.copyfile(HERE / "usage.ts", outdir / "usage.ts")
    run(["npx", "--yes", "-p", TYPESCRIPT, "tsc", *TSC, str(outdir / "usage.ts")])


class Failed(Exception):
    """A command failed, or said something other than that it worked."""


class Missing(Failed):
    """A generator is not installed here."""


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)  # noqa: T201
    done = subprocess.run(  # noqa: S603 (our own commands)
        command, capture_output=True, text=True, env=os.environ | NPM_QUIET, check=False
    )
    output = (done.stdout + done.stderr).rstrip()
    if output:
        print(output, flush=True)  # noqa: T201
    said = output
    for path in (argument for argument in command if "/" in argument):  # our paths never read as complaints
        said = said.replace(path, "")
    complaints = [line for line in said.splitlines() if COMPLAINT.search(line)]
    if done.returncode != 0 or complaints:
        raise Failed(f"{Path(command[0]).name} exited {done.returncode}; " + "; ".join(complaints[:5]))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    try:
        main(Path(sys.argv[1]).resolve())
    except Failed as failure:
        sys.exit(f"clients: {failure}")
