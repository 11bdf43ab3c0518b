"""User administration (admin role): list, add, change role or password, delete."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for

from .auth import role_required
from .users import ROLES, UserError

bp = Blueprint("admin", __name__)


def _users():
    return current_app.extensions["rivermon"].users


@bp.route("/admin/users", methods=["GET", "POST"])
@role_required("admin")
def users() -> Any:
    error = message = None
    status = 200
    if request.method == "POST":
        action = request.form.get("action", "")
        name = request.form.get("name", "").strip()
        try:
            if action == "add":
                _users().add(name, request.form.get("role", ""), request.form.get("password", ""))
            elif action == "role":
                if name == g.user.name:
                    raise UserError("you cannot change your own role")
                _users().set_role(name, request.form.get("role", ""))
            elif action == "password":
                _users().set_password(name, request.form.get("password", ""))
            elif action == "delete":
                if name == g.user.name:
                    raise UserError("you cannot delete yourself")
                _users().delete(name)
            else:
                raise UserError(f"unknown action {action[:20]!r}")
            message = f"{action}: {name}"
        except UserError as exc:
            error, status = str(exc), 400
        if status == 200:
            return redirect(url_for("admin.users"))
    return render_template("users.html", users=_users().all(), roles=ROLES, error=error,
                           message=message), status
