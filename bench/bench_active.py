"""Active vs random labeling, simulated through the real labeling queue: test ROC-AUC against train labels.

A synthetic pool stands in for L2I(U): each sample has a feature vector (as the frozen EfficientNet gives the
classifiers) and a known good/bad label drawn from a logistic ground truth. A simulated annotator takes samples
from `annotations.queue.next_items` exactly as the app serves them and labels them with the known labels. The
test split is labelled first (both strategies serve it first, in random order). Then, every --rescore-every
labels, the classifier head is refitted on the train labels so far with the trainer's own `fit_head`, its
P(good) for the pool is stored with `annotations.active.store_scores` (what `l2i annotate rank` does), and the
next labels are taken with `--strategy random` or `uncertain`; test ROC-AUC is reported at the --steps.

    python bench/bench_active.py                      # 6000-sample pool (1000 test), 3 seeds, 2 label regimes
    python bench/bench_active.py --pool 3000 --test 500 --seeds 1 --steps 100,200,400,800 --sharpness 20
"""
from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from annotations import db
from annotations.active import TaskScores, store_scores
from annotations.queue import MAX_HELD, Settings, next_items, record
from annotations.users import add_user
from classifiers.evaluate import roc_auc
from classifiers.train import TrainConfig, fit_head

TASK = "mask"


def synthetic_pool(n: int, dim: int, seed: int, sharpness: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features and known labels: P(good) = sigmoid(sharpness * (w.x + 0.15)), about 55-60 % good.

    Sharpness sets how much the features decide the label: 20 is nearly deterministic (annotators agree, the
    features capture what they see), 4 leaves many near-boundary samples a coin flip."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    w = rng.normal(size=dim)
    logit = sharpness * ((x @ w) / np.linalg.norm(w) + 0.15)
    p_good = 1.0 / (1.0 + np.exp(-logit))
    return x, rng.random(n) < p_good, p_good


def make_db(path: Path, n: int, n_test: int, seed: int) -> sqlite3.Connection:
    """A labels database whose pool is the synthetic samples (key = index), seeded random order as `pool` draws."""
    conn = db.connect(path, create=True)
    order = np.random.default_rng(seed + 1).permutation(n)
    with db.write(conn):
        conn.executemany("INSERT INTO samples (key, shard, split, pos, draw) VALUES (?, 'sim', ?, ?, 1.0)",
                         [(str(i), "test" if pos < n_test else "train", pos) for pos, i in enumerate(order)])
        conn.executemany("INSERT INTO meta (k, v) VALUES (?, ?)", [("seed", str(seed)), ("samples_dir", "sim")])
    add_user(conn, "sim")
    return conn


def take(conn: sqlite3.Connection, n: int, s: Settings, good: np.ndarray) -> list[int]:
    """The simulated annotator labels the next n samples the queue serves; returns their indices."""
    done: list[int] = []
    while len(done) < n:
        items = next_items(conn, 1, TASK, min(MAX_HELD, n - len(done)), s)
        if not items:
            break
        for item in items:
            record(conn, 1, TASK, item.key, "good" if good[int(item.key)] else "bad", s)
            done.append(int(item.key))
    return done


def run(strategy: str, steps: list[int], every: int, x: np.ndarray, good: np.ndarray, n_test: int, seed: int,
        workdir: Path, cfg: TrainConfig) -> list[float]:
    conn = make_db(workdir / f"{strategy}_{seed}.sqlite", len(x), n_test, seed)
    s = Settings(overlap=0.0, strategy=strategy)
    test = np.array(take(conn, n_test, s, good))
    split = dict(conn.execute("SELECT key, split FROM samples").fetchall())
    assert {split[str(i)] for i in test} == {"test"}, "the queue serves the test split first"
    train_ids = np.array([int(k) for k, in conn.execute("SELECT key FROM samples WHERE split = 'train'")])
    labelled: list[int] = []
    aucs = []
    while len(labelled) < steps[-1]:
        labelled += take(conn, min(every - len(labelled) % every, steps[-1] - len(labelled)), s, good)
        head = fit_head(x[labelled], good[labelled], cfg)
        if len(labelled) in steps:
            aucs.append(roc_auc(head.scores(x[test]), good[test]))
        p = head.scores(x[train_ids])
        store_scores(conn, TaskScores(TASK, {str(i): float(v) for i, v in zip(train_ids, p)}, 0.5, "bench head"))
    conn.close()
    return aucs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=int, default=6000, help="pool size, train + test (default 6000, as the paper)")
    ap.add_argument("--test", type=int, default=1000, help="test split size (default 1000)")
    ap.add_argument("--dim", type=int, default=64, help="feature dimension (default 64)")
    ap.add_argument("--steps", default="100,200,300,400,600,800,1000,1500,2000",
                    help="numbers of train labels to report (default 100,...,2000)")
    ap.add_argument("--rescore-every", type=int, default=100,
                    help="refit the head and re-rank the pool every N train labels (default 100)")
    ap.add_argument("--seeds", type=int, default=3, help="repetitions, each a fresh pool (default 3)")
    ap.add_argument("--epochs", type=int, default=100, help="head epochs per fit (default 100, as the paper)")
    ap.add_argument("--sharpness", default="20,4",
                    help="label regimes: logistic sharpness of the ground truth (default 20 = clean, 4 = noisy)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny fits: one thread is many times faster than several on a shared machine
    steps = sorted({min(int(v), args.pool - args.test) for v in args.steps.split(",")})
    if any(n % args.rescore_every for n in steps):
        ap.error("every --steps value must be a multiple of --rescore-every")
    cfg = TrainConfig(task=TASK, labels="", samples="", out="", epochs=args.epochs)

    for sharpness in (float(v) for v in args.sharpness.split(",")):
        regime(args, steps, cfg, sharpness)


def regime(args: argparse.Namespace, steps: list[int], cfg: TrainConfig, sharpness: float) -> None:
    t0 = time.time()
    results: dict[str, list[list[float]]] = {"random": [], "uncertain": []}
    ceiling, good_share = [], []
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        for seed in range(args.seeds):
            x, good, p_good = synthetic_pool(args.pool, args.dim, seed, sharpness)
            good_share.append(good.mean())
            ceiling.append(roc_auc(p_good, good))  # the true P(good) as scores: the best any classifier can do
            for strategy in results:
                results[strategy].append(run(strategy, steps, args.rescore_every, x, good, args.test, seed,
                                             Path(tmp), cfg))
    rnd, unc = (np.array(results[k]) for k in ("random", "uncertain"))
    print(f"\nsharpness {sharpness:g}: pool {args.pool} ({args.test} test, labelled first, "
          f"{np.mean(good_share):.0%} good), {args.dim}-d features, {args.seeds} seed(s), "
          f"fit_head {args.epochs} epochs, re-ranked every {args.rescore_every} labels; "
          f"best possible AUC {np.mean(ceiling):.3f}; {time.time() - t0:.0f} s")
    print(f"| {'train labels':>12} | {'test AUC random':>17} | {'test AUC uncertain':>18} | {'difference':>10} |")
    print(f"|{'-' * 14}|{'-' * 19}|{'-' * 20}|{'-' * 12}|")
    for i, n in enumerate(steps):
        r, u = rnd[:, i], unc[:, i]
        print(f"| {n:>12} | {r.mean():>9.3f} ± {r.std():.3f} | {u.mean():>10.3f} ± {u.std():.3f} | "
              f"{(u - r).mean():>+10.3f} |")
    target = rnd[:, -1].mean()
    reach = {k: next(n for n, a in zip(steps, v.mean(0)) if a >= target - 1e-9) for k, v in (("random", rnd),
                                                                                         ("uncertain", unc))}
    print(f"labels to reach random's AUC at {steps[-1]} ({target:.3f}): random {reach['random']}, "
          f"uncertain {reach['uncertain']}")


if __name__ == "__main__":
    main()
