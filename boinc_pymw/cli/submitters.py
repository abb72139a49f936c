"""``boinc_pymw submitters add|remove|list``: who may submit jobs remotely.

BOINC's remote submission RPCs (``-i boinc --url``) accept an account only
when it has a ``user_submit`` row, and, unless that row says ``submit_all``,
a ``user_submit_app`` row for the app (html/inc/submit_util.inc
``check_remote_submit_permissions``). This command writes those rows the way
the project's management pages (html/user/manage_project.php) do:

* ``add EMAIL``: the account may submit to every app (``submit_all = 1``);
* ``add EMAIL --app NAME``: only to the named apps (one ``user_submit_app``
  row each; ``submit_all`` stays 0 for a new submitter);
* ``remove EMAIL --app NAME``: that app only; ``remove EMAIL``: every right;
* ``list``: submitters and their apps (never their authenticators).
"""

from __future__ import annotations

import sys

from ..errors import BoincPymwError

COMMAND = "submitters"
HELP = "allow or forbid remote job submission (-i boinc --url) for an account"


def add_arguments(parser) -> None:
    parser.add_argument("-p", "--project", metavar="DIR",
                        help="project directory (default: $BOINC_PROJECT_DIR, '.', '..')")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    add = sub.add_parser("add", help="allow EMAIL's account to submit (to --app apps, "
                                     "or to every app)")
    add.add_argument("email")
    add.add_argument("--app", action="append", default=[], metavar="NAME",
                     help="only this app (repeatable)")
    remove = sub.add_parser("remove", help="take EMAIL's right to submit (to --app apps, "
                                           "or all of it)")
    remove.add_argument("email")
    remove.add_argument("--app", action="append", default=[], metavar="NAME")
    sub.add_parser("list", help="accounts that may submit, and to which apps")


def _user(db, email: str) -> dict:
    user = db.query_one("SELECT id, name, email_addr FROM user WHERE email_addr=%s", (email,))
    if user is None:
        raise BoincPymwError(f"no account with email address {email!r} in this project")
    return user


def _app(db, name: str) -> dict:
    app = db.query_one("SELECT id, name, deprecated FROM app WHERE name=%s", (name,))
    if app is None:
        raise BoincPymwError(f"no app named {name!r} in this project")
    return app


def grant(db, email: str, apps=()) -> str:
    """Allow ``email`` to submit to ``apps`` (every app when empty); what changed, in words."""
    user = _user(db, email)
    app_rows = [_app(db, name) for name in apps]
    with db.transaction():
        row = db.query_one("SELECT submit_all FROM user_submit WHERE user_id=%s",
                           (user["id"],))
        if row is None:
            db.insert("user_submit", {"user_id": user["id"], "quota": 0.0,
                                      "logical_start_time": 0.0,
                                      "submit_all": 0 if app_rows else 1, "manage_all": 0,
                                      "max_jobs_in_progress": 0})
        elif not app_rows and not row["submit_all"]:
            db.execute("UPDATE user_submit SET submit_all=1 WHERE user_id=%s", (user["id"],))
        for app in app_rows:
            if db.query_one("SELECT user_id FROM user_submit_app WHERE user_id=%s AND "
                            "app_id=%s", (user["id"], app["id"])) is None:
                db.insert("user_submit_app", {"user_id": user["id"], "app_id": app["id"],
                                              "manage": 0})
    if not app_rows:
        return f"{email} (user {user['id']}) may submit jobs to every app"
    note = " (and already to every app)" if row is not None and row["submit_all"] else ""
    return (f"{email} (user {user['id']}) may submit jobs to "
            f"{', '.join(a['name'] for a in app_rows)}{note}")


def revoke(db, email: str, apps=()) -> str:
    """Take ``email``'s right to submit to ``apps`` (all rights when empty)."""
    user = _user(db, email)
    app_rows = [_app(db, name) for name in apps]
    with db.transaction():
        row = db.query_one("SELECT submit_all FROM user_submit WHERE user_id=%s",
                           (user["id"],))
        if row is None:
            return f"{email} may not submit jobs; nothing to remove"
        if not app_rows:
            db.execute("DELETE FROM user_submit WHERE user_id=%s", (user["id"],))
            db.execute("DELETE FROM user_submit_app WHERE user_id=%s", (user["id"],))
            return f"{email} (user {user['id']}) may no longer submit jobs"
        if row["submit_all"]:
            raise BoincPymwError(
                f"{email} may submit to every app; to allow only some, run "
                f"'submitters remove {email}' and then 'submitters add {email} --app NAME'")
        for app in app_rows:
            db.execute("DELETE FROM user_submit_app WHERE user_id=%s AND app_id=%s",
                       (user["id"], app["id"]))
    return (f"{email} (user {user['id']}) may no longer submit jobs to "
            f"{', '.join(a['name'] for a in app_rows)}")


def submitters(db) -> list:
    """One dict per account with a user_submit row: id, email, name, apps ('*' = all)."""
    rows = db.query("SELECT s.user_id, s.submit_all, u.email_addr, u.name FROM user_submit s "
                    "LEFT JOIN user u ON u.id = s.user_id ORDER BY s.user_id")
    apps = {}
    for r in db.query("SELECT sa.user_id, a.name FROM user_submit_app sa "
                      "JOIN app a ON a.id = sa.app_id ORDER BY a.name"):
        apps.setdefault(r["user_id"], []).append(r["name"])
    return [{"id": r["user_id"], "email": r["email_addr"] or "?", "name": r["name"] or "?",
             "apps": ["*"] if r["submit_all"] else apps.get(r["user_id"], [])}
            for r in rows]


def run(args) -> int:
    from ..boinc.project import Project

    if not getattr(args, "action", None):
        print("boinc_pymw submitters: give add, remove or list", file=sys.stderr)
        return 2
    project = Project(args.project)
    try:
        if args.action == "add":
            print(grant(project.db, args.email, args.app))
        elif args.action == "remove":
            print(revoke(project.db, args.email, args.app))
        else:
            rows = submitters(project.db)
            if not rows:
                print("no account may submit jobs remotely")
            for row in rows:
                apps = "every app" if row["apps"] == ["*"] else \
                    (", ".join(row["apps"]) or "no app")
                print(f"{row['id']}\t{row['email']}\t{row['name']}\t{apps}")
    finally:
        project.close()
    return 0
