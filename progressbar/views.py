"""HTTP routes: the page, and the browser's third-party JS from node_modules."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, render_template, send_from_directory
from werkzeug.wrappers import Response

from .identity import current_identity
from .kinds import KINDS

bp = Blueprint("views", __name__)

# Files of npm packages the page may load; nothing else under node_modules is served.
VENDOR = {
    "socket.io.esm.min.js": "socket.io-client/dist",
    "socket.io.esm.min.js.map": "socket.io-client/dist",
}
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"


@bp.before_app_request
def ensure_identity() -> None:
    current_identity()


@bp.get("/")
def index() -> str:
    return render_template("index.html", kinds=[k for k in KINDS.values() if not k.hidden])


@bp.get("/vendor/<path:filename>")
def vendor(filename: str) -> Response:
    folder = VENDOR.get(filename)
    if folder is None or not (NODE_MODULES / folder / filename).is_file():
        abort(404)
    return send_from_directory(NODE_MODULES / folder, filename, max_age=3600)
