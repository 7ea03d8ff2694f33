"""`l2i annotate users`: add, list, revoke, rotate, remove, restore and set-role annotator accounts.

Every change is written to the database's audit log (users.py); tokens are printed once and never stored.
"""
from __future__ import annotations

import argparse

from annotations import db


def _print_token(token: str, url: str) -> None:
    print(f"  token:     {token}")
    print(f"  login URL: {url.rstrip('/')}/login#token={token}")


def cmd_users_add(args: argparse.Namespace) -> int:
    from annotations.users import add_user

    conn = db.open_pool(args.db)
    try:
        token = add_user(conn, args.name, args.admin, reuse_name=args.reuse_name)
    finally:
        conn.close()
    print(f"user {args.name} ({'admin' if args.admin else 'annotator'}) added. The token is shown only this once:")
    _print_token(token, args.url)
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from annotations.users import list_users

    conn = db.connect(args.db)
    try:
        for u in list_users(conn, include_removed=args.all):
            print(f"{u.name}\t{u.role}\t{u.status}")
    finally:
        conn.close()
    return 0


def cmd_users_change(args: argparse.Namespace) -> int:
    from annotations import users

    conn = db.open_pool(args.db)
    try:
        if args.users_command == "revoke":
            n = users.revoke_user(conn, args.name)
            print(f"user {args.name} revoked: token dead, {n} live session(s) ended (`rotate` gives a new token)")
        elif args.users_command == "rotate":
            token = users.rotate_user(conn, args.name)
            print(f"user {args.name}: new token; the old one and its sessions no longer work. Shown only this once:")
            _print_token(token, args.url)
        elif args.users_command == "restore":
            token = users.restore_user(conn, args.name)
            print(f"user {args.name} restored, with their labels. The new token is shown only this once:")
            _print_token(token, args.url)
        elif args.users_command == "remove":
            kept = users.remove_user(conn, args.name)
            print(f"user {args.name} removed; their {kept} label(s) stay in the history and the export")
        else:
            users.set_role(conn, args.name, args.role)
            print(f"user {args.name} is now an {args.role}")
    finally:
        conn.close()
    return 0


def register_users(sub) -> None:
    users = sub.add_parser("users", help="manage annotator accounts (every change is logged in the db)")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION")
    users.set_defaults(func=lambda args: (users.print_help(), 2)[1])
    url_help = "base URL annotators reach the server at (default http://127.0.0.1:8700)"

    add = users_sub.add_parser("add", help="add an annotator and print their token and login URL",
                               description="Add a user to an existing pool database. Only a hash of the token "
                                           "is stored: note the URL.")
    add.add_argument("name", help="annotator name, shown in stats and exports")
    add.add_argument("--admin", action="store_true", help="may see the stats page")
    add.add_argument("--url", default="http://127.0.0.1:8700", help=url_help)
    add.add_argument("--reuse-name", action="store_true",
                     help="give a removed user's name to this new account (the removed one becomes NAME~removed-ID)")
    lst = users_sub.add_parser("list", help="list users, roles and status")
    lst.add_argument("--all", action="store_true", help="include removed users")
    revoke = users_sub.add_parser("revoke", help="disable a user: token and live sessions stop working at once")
    rotate = users_sub.add_parser("rotate", help="give a user a new token (the old one dies); re-enables a revoked "
                                                 "user")
    rotate.add_argument("--url", default="http://127.0.0.1:8700", help=url_help)
    remove = users_sub.add_parser("remove", help="remove a user; their labels stay in the history and the export")
    restore = users_sub.add_parser("restore", help="bring a removed user back, with their labels and a new token")
    restore.add_argument("--url", default="http://127.0.0.1:8700", help=url_help)
    role = users_sub.add_parser("set-role", help="make a user an admin or an annotator")
    for p in (revoke, rotate, remove, restore, role):
        p.add_argument("name", help="annotator name")
        p.set_defaults(func=cmd_users_change)
    role.add_argument("role", choices=["admin", "annotator"])
    add.set_defaults(func=cmd_users_add)
    lst.set_defaults(func=cmd_users_list)
    for p in (add, lst, revoke, rotate, remove, restore, role):
        p.add_argument("--db", required=True, help="labels database (made by `l2i annotate pool`)")


