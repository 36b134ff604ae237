"""The room page ships in the package: a wheel built from the sources holds web/'s page files
(and nothing else of web/), and a server installed from it, away from any checkout, serves them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp

from loadtest.serverproc import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
PAGE_FILES = sorted(
    p.name for p in (ROOT / "web").iterdir() if p.suffix in (".html", ".js", ".css", ".svg", ".png")
)


def build_wheel(tmp: Path) -> Path:
    """From a copy of what a clone holds (web/node_modules/ left out: npm's, not ours)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("sfu", "signaling", "loadtest", "web"):
        shutil.copytree(
            ROOT / name,
            src / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("node_modules", "__pycache__"),
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = (tmp / "dist").glob("aiosfu-*.whl")
    return wheel


def install(wheel: Path, site: Path, elsewhere: Path) -> dict[str, str]:
    """Install the wheel alone into `site`; the environment that imports it from `elsewhere`."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": os.environ.get("PATH", "")}
    where = subprocess.run(
        [sys.executable, "-c", "import sfu.web; print(sfu.web.DEFAULT_WEB_DIR)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where == str(site / "sfu" / "page"), where  # the installed copy, not the checkout
    return env


async def test_a_wheel_install_serves_the_page(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    shipped = sorted(
        name.removeprefix("sfu/page/")
        for name in zipfile.ZipFile(wheel).namelist()
        if name.startswith("sfu/page/")
    )
    assert "index.html" in PAGE_FILES and "sfu-client.js" in PAGE_FILES
    assert shipped == PAGE_FILES  # not package.json, protocol.d.ts, typetests/, node_modules/

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    env = install(wheel, site, elsewhere)
    async with ServerProcess(cwd=elsewhere, env=env) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}/"
        async with http.get(base) as page:
            assert page.status == 200
            assert '<script type="module" src="/app.js">' in await page.text()
        for name in (n for n in PAGE_FILES if n != "index.html"):  # that one is /
            async with http.get(base + name) as response:
                assert response.status == 200, name
                assert await response.read() == (ROOT / "web" / name).read_bytes(), name
