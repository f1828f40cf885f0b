"""Build hook: the wheel carries socket.io-client's browser build, so an app that
installs progressbar serves it without npm. Everything else is in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "node_modules" / "socket.io-client" / "dist"
FILES = ("socket.io.esm.min.js", "socket.io.esm.min.js.map")


class BuildWithBrowserClient(build_py):
    def run(self) -> None:
        super().run()
        if not (DIST / FILES[0]).is_file():
            # The version comes from package-lock.json, from the npm registry.
            if shutil.which("npm") is None:
                raise SystemExit("progressbar: socket.io-client is missing: install npm")
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
        vendor = Path(self.build_lib) / "progressbar" / "static" / "vendor"
        vendor.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copy2(DIST / name, vendor / name)


setup(cmdclass={"build_py": BuildWithBrowserClient})
