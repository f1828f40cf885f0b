"""The demo's page: a start form per kind, and the task board."""

from __future__ import annotations

from flask import Blueprint, render_template

from . import progress_bars

bp = Blueprint("demo", __name__)


@bp.get("/")
def index() -> str:
    return render_template("index.html", kinds=progress_bars.kinds.visible())
