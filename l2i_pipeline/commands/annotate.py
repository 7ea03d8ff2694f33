"""`l2i annotate`: draw a labeling pool, manage annotators, serve the labeling app, export resolved labels.

User mistakes raise `UserError` subclasses; `l2i` prints them as one line and exits 2.
"""
from __future__ import annotations

import argparse
import logging

from annotations import db
from l2i_pipeline.commands.annotate_scoring import score_pool
from l2i_pipeline.commands.annotate_users import register_users
from l2i_pipeline.commands.args import add_storage_options_arg
from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.storage import open_store

log = logging.getLogger(__name__)

EPILOG = """\
typical session:
  l2i annotate pool --samples demo_out/l2i --db labels.sqlite
  l2i annotate users add alice --admin --db labels.sqlite     # prints alice's login URL
  l2i annotate serve --db labels.sqlite                        # then open the URL
  l2i annotate export --db labels.sqlite --out labels.parquet
active labeling, once classifiers are trained on the first labels:
  l2i annotate serve --db labels.sqlite --strategy uncertain \\
      --mask-classifier ckpt/mask --inpaint-classifier ckpt/inpaint
"""


def cmd_pool(args: argparse.Namespace) -> int:
    """A pool that fails (or draws nothing) into a new file leaves no file: a schema-only db is no pool."""
    from pathlib import Path

    from annotations.pool import build_pool

    new = not Path(args.db).exists()
    conn = db.connect(args.db, create=True)
    r = None
    try:
        r = build_pool(conn, args.samples, args.size, args.test, args.seed, args.storage_options)
    finally:
        conn.close()
        if new and (r is None or not r.train + r.test):
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{args.db}{suffix}").unlink(missing_ok=True)
    print(f"pool in {args.db}: {r.train} train + {r.test} test samples "
          f"(from {r.available} ok samples, seed {args.seed}; {r.dropped} left out for missing members)")
    return 0 if r.train + r.test else 1


def _checkpoints(args: argparse.Namespace) -> dict[str, str]:
    return {t: p for t, p in (("mask", args.mask_classifier), ("inpaint", args.inpaint_classifier)) if p}


def _load_scores(conn, args: argparse.Namespace) -> bool:
    """Score the pool from checkpoints and/or sidecars given on the command line; False when none were."""
    from annotations import active

    checkpoints = _checkpoints(args)
    loaded = []
    if args.scores:
        scores = open_store(args.scores, args.storage_options)
        loaded += [ts for ts in active.read_sidecars(conn, scores) if ts.task not in checkpoints]
    if checkpoints:
        loaded += active.score_with_checkpoints(conn, checkpoints, score_pool)
    for ts in loaded:
        n = active.store_scores(conn, ts)
        print(f"{ts.task}: {n} pool samples scored, threshold {ts.threshold:.3f} ({ts.source})")
    return bool(args.scores or checkpoints)


def cmd_rank(args: argparse.Namespace) -> int:
    if not (args.scores or _checkpoints(args)):
        raise ConfigError("give --mask-classifier, --inpaint-classifier and/or --scores")
    conn = db.open_pool(args.db)
    try:
        _load_scores(conn, args)
    finally:
        conn.close()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from annotations import active, limits
    from annotations.queue import Settings
    from annotations.server import create_app

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if not 0.0 <= args.overlap <= 1.0:
        raise ConfigError(f"--overlap must be between 0 and 1, got {args.overlap}")
    if not args.lease_minutes > 0:
        raise ConfigError(f"--lease-minutes must be positive, got {args.lease_minutes}")
    if args.url:
        limits.public_origin(args.url)  # a URL the app cannot be served at is a one-line error
    hosts = limits.allowed_hosts(args.host, [args.url or "", *args.allowed_host])
    settings = Settings(overlap=args.overlap, lease_seconds=args.lease_minutes * 60, strategy=args.strategy)
    conn = db.open_pool(args.db)
    try:
        _load_scores(conn, args)
        scored = active.scored_counts(conn)
        if args.strategy == "uncertain":
            for task, n in scored.items():
                if not n:
                    log.warning("--strategy uncertain but no %s scores: %s samples are served in random order "
                                "(give --%s-classifier or --scores, or run `l2i annotate rank`)", task, task, task)
        with db.write(conn):
            db.audit(conn, "serve", strategy=args.strategy, overlap=args.overlap, scored=scored, hosts=hosts)
    finally:
        conn.close()
    if args.host in limits.ANY_INTERFACE and not (args.url or args.allowed_host):
        log.warning("bound to every interface but only %s are answered; add --url or --allowed-host", hosts)
    app = create_app(args.db, settings, allowed_hosts=hosts, public_url=args.url)
    log.info("labeling app on http://%s:%d, strategy %s, answering Host %s (log in with the URL from "
             "`l2i annotate users add`)", args.host, args.port, args.strategy, ", ".join(hosts))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from annotations.export import all_labels, describe, format_for, meta_path, resolve, write_export

    fmt = format_for(args.out, args.format)  # before any work: a bad --out is a one-line error
    kind = "all_labels" if args.all_labels else "resolved"
    conn = db.connect(args.db)
    try:
        rows, summary = all_labels(conn) if args.all_labels else resolve(conn)
        meta = describe(conn, summary, len(rows), kind)
    finally:
        conn.close()
    write_export(rows, args.out, fmt, meta)
    what = "labels (every annotator's)" if args.all_labels else "resolved labels"
    print(f"{len(rows)} {what} -> {args.out} ({fmt}); how they were made -> {meta_path(args.out)}")
    print(f"{'task':8} {'good':>6} {'bad':>6} {'ties left out':>14}")
    for task in db.TASKS:
        c = summary.rows[task]
        print(f"{task:8} {c['good']:>6} {c['bad']:>6} {summary.ties[task]:>14}")
    return 0


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask-classifier", metavar="CKPT", help="mask classifier checkpoint to rank the pool with")
    p.add_argument("--inpaint-classifier", metavar="CKPT", help="inpaint classifier checkpoint to rank the pool with")
    p.add_argument("--scores", metavar="DIR", help="directory or URL of `l2i score` sidecars (NAME_scores.parquet)")
    add_storage_options_arg(p)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "annotate", help="label mask and inpainting quality in a web app; export the labels",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="annotate_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    pool = sub.add_parser("pool", help="draw a reproducible random train/test pool of ok samples",
                          description="Draw SIZE ok samples at random (seeded) from the L2I(U) shards, split off "
                                      "TEST of them as the test split, and index their members' byte offsets.")
    pool.add_argument("--samples", required=True, metavar="L2IU_DIR",
                      help="L2I(U) output shards: a path or a storage URL (s3://, gs://, ...)")
    add_storage_options_arg(pool)
    pool.add_argument("--db", required=True, help="labels database to create (SQLite)")
    pool.add_argument("--size", type=int, default=6000, help="pool size, train + test (default 6000)")
    pool.add_argument("--test", type=int, default=1000, help="how many of them form the test split (default 1000)")
    pool.add_argument("--seed", type=int, default=0, help="random seed; same seed and shards, same pool (default 0)")
    pool.set_defaults(func=cmd_pool)

    register_users(sub)

    serve = sub.add_parser(
        "serve", help="run the labeling web app",
        description="Serve the labeling app. Pages: /annotate/mask, /annotate/inpaint, /stats. Only requests "
                    "addressed to localhost, --host, --url or an --allowed-host are answered.")
    serve.add_argument("--db", required=True, help="labels database")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8700, help="port (default 8700)")
    serve.add_argument("--url", help="public base URL annotators open, e.g. https://label.lab.org (its host name is "
                                     "answered, its origin accepted behind a Host-rewriting proxy; https: Secure "
                                     "cookie and HSTS)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="HOST",
                       help="another host name to answer (repeatable)")
    serve.add_argument("--overlap", type=float, default=0.1,
                       help="share of samples shown to a second annotator, for agreement (default 0.1)")
    serve.add_argument("--lease-minutes", type=float, default=20,
                       help="how long a sample handed to an annotator is reserved for them (default 20)")
    serve.add_argument("--strategy", choices=["random", "uncertain"], default="random",
                       help="train-split order: random (the paper's protocol, default) or uncertain (nearest the "
                            "classifier threshold first; the test split stays random)")
    _score_args(serve)
    serve.set_defaults(func=cmd_serve)

    rank = sub.add_parser("rank", help="(re)score the pool for --strategy uncertain; a running app uses it at once",
                          description="Store classifier P(good) for the pool's samples, from checkpoints or "
                                      "`l2i score` sidecars, replacing the task's previous scores.")
    rank.add_argument("--db", required=True, help="labels database")
    _score_args(rank)
    rank.set_defaults(func=cmd_rank)

    export = sub.add_parser("export", help="write resolved labels (majority; ties left out) as JSONL or Parquet",
                            description="One row per (sample, task): key, shard, task, label, annotator, time, "
                                        "split. FILE.meta.json records the pool seed, strategy and label counts.")
    export.add_argument("--db", required=True, help="labels database")
    export.add_argument("--out", required=True, metavar="FILE", help="output file: NAME.jsonl or NAME.parquet")
    export.add_argument("--format", choices=["jsonl", "parquet"], default=None,
                        help="output format; must match the extension of --out")
    export.add_argument("--all-labels", action="store_true",
                        help="every annotator's standing label, one row each (with annotator and time), instead "
                             "of one resolved row per sample: to recompute agreement")
    export.set_defaults(func=cmd_export)
