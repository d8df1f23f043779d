"""Vendor a UI of the API document's pages from the npm registry, e.g. `python tools/vendor_docs_assets.py
swagger-ui-dist 5.35.0` or `python tools/vendor_docs_assets.py @scalar/api-reference 1.76.4` (needs `npm`).

It downloads the package's tarball with `npm pack`, checks its sha512 against the registry's `dist.integrity`,
copies the files the pages use (no source maps) into service/web/docs_assets/<name>-<version>/ with their licence,
and writes VENDORED.json there: package, version, integrity and a sha256 per file, which
tests/test_docs_assets.py recomputes. Then name the new directory in service/web/docs_pages.py and delete the old one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "service" / "web" / "docs_assets"

# Per package: the directory's name prefix, the files taken from the tarball (path in it -> name here), and where
# the licence comes from when the tarball has none.
PACKAGES: dict[str, tuple[str, dict[str, str], str | None]] = {
    "swagger-ui-dist": (
        "swagger-ui-dist",
        {
            "package/swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "package/swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
            "package/swagger-ui.css": "swagger-ui.css",
            "package/oauth2-redirect.html": "oauth2-redirect.html",
            "package/oauth2-redirect.js": "oauth2-redirect.js",
            "package/LICENSE": "LICENSE",
            "package/NOTICE": "NOTICE",
        },
        None,
    ),
    "@scalar/api-reference": (
        "scalar-api-reference",
        {"package/dist/browser/standalone.js": "standalone.js"},
        # MIT; the npm package carries no copy of it: the text of github.com/scalar/scalar/blob/main/LICENSE
        "https://github.com/scalar/scalar/blob/main/LICENSE",
    ),
}


def main(package: str, version: str) -> None:
    prefix, files, licence_url = PACKAGES[package]
    integrity = _npm(["view", f"{package}@{version}", "dist.integrity"]).strip()
    target = ASSETS / f"{prefix}-{version}"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tarball = Path(scratch) / _npm(["pack", f"{package}@{version}", "--pack-destination", scratch]).strip()
        digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if integrity != f"sha512-{digest}":
            sys.exit(f"{tarball.name}: sha512-{digest} is not the registry's {integrity}")
        with tarfile.open(tarball) as archive:
            for member, name in files.items():
                source = archive.extractfile(member)
                assert source is not None, member
                (target / name).write_bytes(source.read())
    if licence_url and not (target / "LICENSE").exists():  # from the version vendored before, or saved by hand
        previous = [path for path in ASSETS.glob(f"{prefix}-*/LICENSE") if path.parent != target]
        if not previous:
            sys.exit(f"save the licence text of {licence_url} as {target}/LICENSE, then run this again")
        (target / "LICENSE").write_bytes(previous[0].read_bytes())
    record = {
        "package": package,
        "version": version,
        "integrity": integrity,
        "licence": licence_url or "the package's own",
        "sha256": {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(target.iterdir())
            if path.name != "VENDORED.json"
        },
    }
    (target / "VENDORED.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{target.relative_to(ASSETS.parent.parent.parent)}: {len(record['sha256'])} files")  # noqa: T201


def _npm(arguments: list[str]) -> str:
    return subprocess.run(["npm", *arguments], check=True, capture_output=True, text=True).stdout  # noqa: S603, S607


if __name__ == "__main__":
    main(*sys.argv[1:3])
