"""Active labeling: with scores from sidecars or classifier checkpoints, `--strategy uncertain` serves the train
split nearest the threshold first and leaves the test split in its random order; random stays the default."""
from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from annotations import db
from l2i_pipeline.cli import main


def pool_rows(env) -> list[tuple[str, str, str]]:
    conn = db.connect(env.db_path)
    return [tuple(r) for r in conn.execute("SELECT key, shard, split FROM samples ORDER BY pos")]


def write_sidecars(env, out_dir, threshold: float = 0.3) -> dict[str, float]:
    """NAME_scores.parquet as `l2i score` writes them: mask scores known, inpaint unscored (NaN)."""
    rng = random.Random(5)
    scores: dict[str, dict[str, float]] = {}
    for key, shard, _ in pool_rows(env):
        scores.setdefault(shard, {})[key] = round(rng.random(), 4)
    out_dir.mkdir()
    meta = {"classifiers": {"mask": {"threshold": threshold, "checkpoint": "mask.safetensors"}}}
    for shard, by_key in scores.items():
        keys = sorted(by_key)
        table = pa.table({"key": keys, "mask_score": pa.array([by_key[k] for k in keys], pa.float32()),
                          "inpaint_score": pa.array([float("nan")] * len(keys), pa.float32())})
        table = table.replace_schema_metadata({"l2i_scores": json.dumps(meta)})
        pq.write_table(table, out_dir / f"{shard}_scores.parquet")
    return {k: float(pa.scalar(v, pa.float32()).as_py()) for d in scores.values() for k, v in d.items()}


def expected_uncertain(env, scores: dict[str, float], threshold: float) -> list[str]:
    rows = pool_rows(env)
    test = [k for k, _, split in rows if split == "test"]
    train = [k for k, _, split in rows if split == "train"]
    return test + sorted(train, key=lambda k: (abs(scores[k] - threshold), train.index(k)))


def served(client, task: str) -> list[str]:
    return [i["key"] for i in client.post(f"/api/tasks/{task}/next", json={"n": 12}).json()["items"]]


def test_sidecar_scores_rank_the_train_split_only(env, make_client, tmp_path, capsys):
    scores = write_sidecars(env, tmp_path / "scores")
    assert main(["annotate", "rank", "--db", str(env.db_path), "--scores", str(tmp_path / "scores")]) == 0
    assert "mask: 12 pool samples scored, threshold 0.300" in capsys.readouterr().out
    random_order = [k for k, _, _ in pool_rows(env)]
    assert served(make_client("ann1", overlap=0.0), "mask") == random_order  # default: the paper's protocol
    db.connect(env.db_path).execute("DELETE FROM leases")  # ann1's leases go: ann2 may be served the whole pool
    uncertain = served(make_client("ann2", overlap=0.0, strategy="uncertain"), "mask")
    assert uncertain == expected_uncertain(env, scores, 0.3) != random_order
    test_keys = [k for k, _, split in pool_rows(env) if split == "test"]
    assert uncertain[:len(test_keys)] == test_keys  # the test split keeps its random order, first
    # inpaint has no scores: uncertain falls back to the random order
    assert served(make_client("ann3", overlap=0.0, strategy="uncertain"), "inpaint") == random_order


def test_a_sidecar_that_disagrees_with_its_marker_is_refused(env, tmp_path, capsys):
    # the ranking reads sidecars as `l2i filter` does: checked against the size and sha256 `l2i score` recorded
    from l2i_pipeline.core.sidecars import write_sidecar

    out = tmp_path / "scores"
    shards = sorted({shard for _, shard, _ in pool_rows(env)})
    for shard in shards:
        keys = [k for k, s, _ in pool_rows(env) if s == shard]
        write_sidecar(out, shard.rsplit("/", 1)[-1], {k: {"mask_score": 0.5} for k in keys},
                      {"classifiers": {"mask": {"threshold": 0.3}}})
    assert main(["annotate", "rank", "--db", str(env.db_path), "--scores", str(out)]) == 0
    capsys.readouterr()
    victim = sorted(out.glob("*_scores.parquet"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    victim.write_bytes(bytes(data))
    assert main(["annotate", "rank", "--db", str(env.db_path), "--scores", str(out)]) == 2
    assert "does not match its marker" in capsys.readouterr().err


def test_serve_loads_scores_records_the_strategy_and_answers_its_url(env, tmp_path, monkeypatch, do_login):
    import uvicorn

    scores = write_sidecars(env, tmp_path / "scores", threshold=0.6)
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    assert main(["annotate", "serve", "--db", str(env.db_path), "--strategy", "uncertain", "--overlap", "0",
                 "--scores", str(tmp_path / "scores"), "--url", "https://lab.example.org", "--port", "8123"]) == 0
    assert started["port"] == 8123
    with TestClient(started["app"], base_url="https://lab.example.org") as c:
        do_login(c, env.tokens["ann1"])
        assert served(c, "mask") == expected_uncertain(env, scores, 0.6)
    with TestClient(started["app"], base_url="http://attacker.example") as c:
        assert c.get("/login").status_code == 400
    conn = db.connect(env.db_path)
    (detail,) = [json.loads(d) for d, in conn.execute("SELECT detail FROM audit WHERE action = 'serve'")]
    assert detail["strategy"] == "uncertain" and detail["scored"] == {"mask": 12, "inpaint": 0}
    assert "lab.example.org" in detail["hosts"]


@pytest.fixture
def checkpoints(tmp_path):
    """Tiny classifiers (random backbone, 32 px) saved the way `l2i classifiers train` saves them; the head is
    scaled to the random backbone's (tiny) features so that the scores spread around the threshold."""
    import torch

    from classifiers.checkpoint import save_checkpoint
    from classifiers.model import QualityClassifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny inputs: one thread is many times faster than several on shared cores
    torch.manual_seed(0)
    out = {}
    for task, threshold in (("mask", 0.45), ("inpaint", 0.55)):
        model = QualityClassifier(task, None, 32)
        with torch.no_grad():
            feats = model.features(torch.rand(8, model.in_channels, 32, 32))
            model.fc.weight.copy_(torch.randn_like(model.fc.weight) / (feats.std() * feats.shape[1] ** 0.5))
            model.fc.bias.copy_(-(model.fc.weight @ feats.mean(0)))
        out[task] = save_checkpoint(model, {"threshold": threshold}, tmp_path / "ckpt" / task)[0].with_suffix("")
    yield out
    torch.set_num_threads(threads)


def test_checkpoints_rank_the_pool_through_the_cli(env, make_client, checkpoints, capsys):
    from annotations.pool import sample_files
    from l2i_pipeline.commands.annotate_scoring import score_pool

    assert main(["annotate", "rank", "--db", str(env.db_path), "--mask-classifier", str(checkpoints["mask"]),
                 "--inpaint-classifier", str(checkpoints["inpaint"])]) == 0
    out = capsys.readouterr().out
    assert "mask: 10 pool samples scored, threshold 0.450" in out and "inpaint: 10 pool samples scored" in out
    conn = db.connect(env.db_path)
    stored = {(t, k): s for t, k, s in conn.execute(
        "SELECT sc.task, s.key, sc.score FROM scores sc JOIN samples s ON s.id = sc.sample_id")}
    train = [k for k, _, split in pool_rows(env) if split == "train"]
    direct = score_pool({"mask": str(checkpoints["mask"])}, [sample_files(conn, k) for k in train[:3]])["mask"]
    assert {("mask", k): pytest.approx(v, abs=1e-6) for k, v in direct.items()} == \
        {("mask", k): stored[("mask", k)] for k in train[:3]}  # the stored scores are the checkpoint's
    assert len({round(v, 4) for (t, _), v in stored.items() if t == "mask"}) > 5  # and they differ per sample
    for task, threshold in (("mask", 0.45), ("inpaint", 0.55)):
        scores = {k: s for (t, k), s in stored.items() if t == task}
        expected = sorted(train, key=lambda k: (abs(scores[k] - threshold), train.index(k)))
        got = served(make_client("ann1", overlap=0.0, strategy="uncertain"), task)
        assert got[2:] == expected and len(got) == 12
