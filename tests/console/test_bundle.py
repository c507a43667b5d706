"""The console the service serves is the console in console/: `npm ci && npm run build` of the sources
(and lock file) into a temporary folder gives, file for file and byte for byte, app/static/console/.
Run `make console` after changing console/ and commit both."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "console"
BUNDLE = ROOT / "app" / "static" / "console"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_served_bundle_is_a_fresh_build_of_the_sources(tmp_path):
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: scripts/test.sh installs it (apt-get install -y npm)", pytrace=False)
    work = tmp_path / "console"
    shutil.copytree(SOURCES, work, ignore=shutil.ignore_patterns("node_modules", "dist"))
    env = {**os.environ, "CONSOLE_OUT": str(tmp_path / "out"), "npm_config_update_notifier": "false"}
    for step in (["ci", "--no-audit", "--no-fund", "--prefer-offline"], ["run", "build"]):
        done = subprocess.run([npm, *step], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm {' '.join(step)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    fresh, served = _files(tmp_path / "out"), _files(BUNDLE)
    assert sorted(fresh) == sorted(served), "app/static/console is not the build of console/: run `make console`"
    changed = [name for name in fresh if fresh[name] != served[name]]
    assert changed == [], f"these files differ from a fresh build (run `make console`): {changed}"
    assert "index.html" in served and any(name.startswith("assets/vendor-") for name in served)


def test_the_console_is_served_with_its_routes(client):
    page = client.get("/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-src 'self' blob:" in policy and "https:" not in policy
    assert client.get("/console/households/12").text == page.text  # history-mode routes answer the page
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    script = next(name for name in _files(BUNDLE) if name.startswith("assets/index-") and name.endswith(".js"))
    asset = client.get(f"/console/{script}")
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    assert "immutable" in asset.headers["cache-control"]
    assert client.get("/console/assets/nothing.js").status_code == 404
    assert client.get("/console/assets/..%2f..%2fmain.py").text == page.text  # never a file outside the bundle
    # Everything it loads comes from this origin: no CDN.
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert links and all(link.startswith("/console/assets/") for link in links)
