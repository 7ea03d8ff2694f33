"""`l2i annotate`: draw a labeling pool, manage annotators, serve the labeling app, export resolved labels."""
from __future__ import annotations

import argparse
import logging
import sys

from annotations import db

log = logging.getLogger(__name__)

EPILOG = """\
typical session:
  l2i annotate pool --samples demo_out/l2i --db labels.sqlite
  l2i annotate users add alice --admin --db labels.sqlite     # prints alice's login URL
  l2i annotate serve --db labels.sqlite                        # then open the URL
  l2i annotate export --db labels.sqlite --out labels.parquet
"""


def cmd_pool(args: argparse.Namespace) -> int:
    from annotations.pool import build_pool

    conn = db.connect(args.db, create=True)
    try:
        r = build_pool(conn, args.samples, args.size, args.test, args.seed)
    except ValueError as e:
        print(f"l2i annotate pool: {e}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    print(f"pool in {args.db}: {r.train} train + {r.test} test samples "
          f"(from {r.available} ok samples, seed {args.seed}; {r.dropped} left out for missing members)")
    return 0 if r.train + r.test else 1


def cmd_users_add(args: argparse.Namespace) -> int:
    from annotations.users import add_user

    conn = db.connect(args.db, create=True)
    try:
        token = add_user(conn, args.name, args.admin)
    except ValueError as e:
        print(f"l2i annotate users add: {e}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    role = "admin" if args.admin else "annotator"
    print(f"user {args.name} ({role}) added. The token is shown only this once:")
    print(f"  token:     {token}")
    print(f"  login URL: {args.url.rstrip('/')}/login#token={token}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from annotations.users import list_users

    conn = db.connect(args.db)
    try:
        for u in list_users(conn):
            print(f"{u.name}\t{'admin' if u.is_admin else 'annotator'}")
    finally:
        conn.close()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from annotations.queue import Settings
    from annotations.server import create_app

    if not 0.0 <= args.overlap <= 1.0:
        print("l2i annotate serve: --overlap must be between 0 and 1", file=sys.stderr)
        return 2
    app = create_app(args.db, Settings(overlap=args.overlap, lease_seconds=args.lease_minutes * 60))
    log.info("labeling app on http://%s:%d (log in with the URL from `l2i annotate users add`)", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from annotations.export import format_for, resolve, write_export

    conn = db.connect(args.db)
    try:
        rows, summary = resolve(conn)
    finally:
        conn.close()
    fmt = format_for(args.out, args.format)
    write_export(rows, args.out, fmt)
    print(f"{len(rows)} resolved labels -> {args.out} ({fmt})")
    print(f"{'task':8} {'good':>6} {'bad':>6} {'ties left out':>14}")
    for task in db.TASKS:
        c = summary.rows[task]
        print(f"{task:8} {c['good']:>6} {c['bad']:>6} {summary.ties[task]:>14}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "annotate", help="label mask and inpainting quality in a web app; export the labels",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="annotate_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    pool = sub.add_parser("pool", help="draw a reproducible random train/test pool of ok samples",
                          description="Draw SIZE ok samples at random (seeded) from the L2I(U) shards, split off "
                                      "TEST of them as the test split, and index their members' byte offsets.")
    pool.add_argument("--samples", required=True, metavar="L2IU_DIR", help="directory of L2I(U) output shards")
    pool.add_argument("--db", required=True, help="labels database to create (SQLite)")
    pool.add_argument("--size", type=int, default=6000, help="pool size, train + test (default 6000)")
    pool.add_argument("--test", type=int, default=1000, help="how many of them form the test split (default 1000)")
    pool.add_argument("--seed", type=int, default=0, help="random seed; same seed and shards, same pool (default 0)")
    pool.set_defaults(func=cmd_pool)

    users = sub.add_parser("users", help="manage annotator accounts")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION")
    users.set_defaults(func=lambda args: (users.print_help(), 2)[1])
    add = users_sub.add_parser("add", help="add an annotator and print their token and login URL",
                               description="Add a user. Only a hash of the token is stored: note the URL.")
    add.add_argument("name", help="annotator name, shown in stats and exports")
    add.add_argument("--admin", action="store_true", help="may see the stats page")
    add.add_argument("--db", required=True, help="labels database")
    add.add_argument("--url", default="http://127.0.0.1:8700",
                     help="base URL annotators reach the server at (default http://127.0.0.1:8700)")
    add.set_defaults(func=cmd_users_add)
    lst = users_sub.add_parser("list", help="list users and roles")
    lst.add_argument("--db", required=True, help="labels database")
    lst.set_defaults(func=cmd_users_list)

    serve = sub.add_parser("serve", help="run the labeling web app",
                           description="Serve the labeling app. Pages: /annotate/mask, /annotate/inpaint, /stats.")
    serve.add_argument("--db", required=True, help="labels database")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8700, help="port (default 8700)")
    serve.add_argument("--overlap", type=float, default=0.1,
                       help="share of samples shown to a second annotator, for agreement (default 0.1)")
    serve.add_argument("--lease-minutes", type=float, default=20,
                       help="how long a sample handed to an annotator is reserved for them (default 20)")
    serve.set_defaults(func=cmd_serve)

    export = sub.add_parser("export", help="write resolved labels (majority; ties left out) as JSONL or Parquet",
                            description="One row per (sample, task): key, shard, task, label, annotator, time, split.")
    export.add_argument("--db", required=True, help="labels database")
    export.add_argument("--out", required=True, metavar="FILE", help="output file")
    export.add_argument("--format", choices=["jsonl", "parquet"], default=None,
                        help="output format (default: from the file extension, else jsonl)")
    export.set_defaults(func=cmd_export)
