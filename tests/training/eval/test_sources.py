"""Reference sets planned from indexes: LL2I-E is the training split's test side; LA excludes L2I by URL."""
from __future__ import annotations

from rawshards import make_rows, write_raw_shard

from training.eval.sources import la_set, ll2ie_set


def test_ll2ie_is_the_held_out_ok_keys_in_order_up_to_the_limit(l2i_dir, is_test):
    keys = [f"0000{s}{i:04d}" for s in (0, 1) for i in range(20) if f"0000{s}{i:04d}" != "000000003"]
    want = [k for k in keys if is_test(k, 0.5, 0)]
    s = ll2ie_set(str(l2i_dir), 0.5, 0, 1000, is_test)
    assert s.keys == want and s.captions[want[0]] == f"a red ball {want[0]}"
    assert ll2ie_set(str(l2i_dir), 0.5, 0, 3, is_test).keys == want[:3]
    assert [k for k, _, _ in s.read(set(want[:2]))] == want[:2]  # streams only what is asked for
    assert ll2ie_set(str(l2i_dir), 0.5, 1, 1000, is_test).fingerprint != s.fingerprint


def test_la_excludes_l2i_images_by_url_not_by_colliding_keys(tmp_path, l2i_dir):
    same = tmp_path / "same"
    write_raw_shard(same, "00000", make_rows(24))  # the download L2I came from: keys 0..19 are its images
    assert la_set(str(same), str(l2i_dir), 100).keys == [f"00000{i:04d}" for i in (3, 20, 21, 22, 23)]
    other = tmp_path / "other"  # another download: the same keys name other images
    rows = make_rows(6)
    for r in rows:
        r["url"] = r["url"].replace("example.test", "elsewhere.test")
    write_raw_shard(other, "00000", rows)
    assert la_set(str(other), str(l2i_dir), 100).keys == [r["key"] for r in rows]
    assert la_set(str(same), None, 4).keys == [f"00000{i:04d}" for i in range(4)]


def test_a_same_size_foreign_write_is_an_error_naming_the_file(tmp_path, make_sample_dir, capsys):
    import json

    from l2i_pipeline.cli import main
    from training.sampling.markers import marker

    d = make_sample_dir(tmp_path / "s", 3)
    for sdir in sorted(p for p in d.iterdir() if p.is_dir()):
        files = {p.name: p.read_bytes() for p in sdir.iterdir()}
        (sdir / "meta.json").write_text(json.dumps(marker({"id": sdir.name}, files)))
    victim = sorted(d.glob("*/composite.png"))[1]
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes
    victim.write_bytes(bytes(data))
    rc = main(["eval", "--runner", "local", "--samples", str(d), "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{victim.parent.name}/composite.png does not match its marker" in err
