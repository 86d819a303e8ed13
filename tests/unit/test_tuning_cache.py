"""The persisted tuning cache: round trip, bad files, foreign machines, read-only folders,
concurrent writers and a writer killed mid-write."""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import signal
import time
import warnings

import pytest

from lightning_core import config
from lightning_core.tuning.cache import KIND, SCHEMA_VERSION, CacheWarning, TuneCache, default_path
from lightning_core.tuning.keys import machine_id

FP = {"backend": "cpu", "machine": "test-box", "lightning_core": "0.2.0"}
MID = machine_id(FP)
KEY = "tune_probe|n=1024|float32|fp32|contiguous|oneshot"


def entry(winner: str = "fast", **extra) -> dict:
    return {"winner": winner, "timings_us": {"fast": 1.0, "slow": 2.5}, "margin_pct": 150.0,
            **extra}


def doc(machines: dict, schema: int = SCHEMA_VERSION) -> dict:
    return {"kind": KIND, "schema_version": schema, "machines": machines}


def test_round_trip_is_versioned_and_readable(tmp_path):
    path = str(tmp_path / "tune.json")
    cache = TuneCache(path)
    assert cache.put(FP, MID, KEY, entry())
    assert cache.put_calibration(FP, MID, {"launch_sync_us": 12.5})
    fresh = TuneCache(path)
    assert fresh.entry(MID, KEY) == entry()
    assert fresh.calibration(MID) == {"launch_sync_us": 12.5}
    text = open(path, encoding="utf-8").read()
    on_disk = json.loads(text)
    assert on_disk["schema_version"] == SCHEMA_VERSION and on_disk["kind"] == KIND
    assert on_disk["machines"][MID]["fingerprint"] == FP
    assert text.count("\n") > 10 and '  "machines"' in text  # indented, one item per line
    assert fresh.persistent and not glob.glob(path + ".*.tmp")


def test_default_path_and_alias(tmp_path, monkeypatch):
    # conftest points LC_TUNE_CACHE_FILE at a temporary file; this test needs it unset.
    monkeypatch.delenv("LC_TUNE_CACHE_FILE", raising=False)
    config.reload()
    try:
        with config.override(LC_CACHE_DIR=str(tmp_path)):
            assert default_path() == str(tmp_path / "tune_cache.json")
        monkeypatch.setenv("CJ_MATMUL_TUNE_CACHE_FILE", str(tmp_path / "seed_name.json"))
        config.reload()
        assert default_path() == str(tmp_path / "seed_name.json")
        assert TuneCache().path == default_path()
    finally:
        monkeypatch.undo()
        config.reload()


def _truncated() -> bytes:
    text = json.dumps(doc({MID: {"fingerprint": FP, "entries": {KEY: entry()}}}), indent=2)
    return text[: len(text) // 2].encode()


BAD_FILES = {
    "corrupt": b"{this is not json",
    "truncated": _truncated(),
    "old_schema": json.dumps(doc({}, schema=0)).encode(),
    "foreign_kind": json.dumps({"kind": "something_else", "schema_version": 1}).encode(),
    "malformed_entry": json.dumps(doc({MID: {"fingerprint": FP,
                                             "entries": {KEY: {"winner": 3}}}})).encode(),
    "not_utf8": b"\xff\xfe\x00garbage",
    "empty": b"",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_warns_once_is_set_aside_and_rebuilt(tmp_path, kind):
    path = tmp_path / "tune.json"
    path.write_bytes(BAD_FILES[kind])
    cache = TuneCache(str(path))
    with pytest.warns(CacheWarning) as record:
        assert cache.entry(MID, KEY) is None
        assert cache.calibration(MID) is None
    assert len(record) == 1 and "unusable" in str(record[0].message)
    aside = glob.glob(str(path) + ".corrupt-*")
    assert len(aside) == 1 and open(aside[0], "rb").read() == BAD_FILES[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.put(FP, MID, KEY, entry("slow"))
        assert TuneCache(str(path)).entry(MID, KEY)["winner"] == "slow"


def test_bad_file_found_while_writing_is_set_aside(tmp_path):
    path = tmp_path / "tune.json"
    cache = TuneCache(str(path))
    assert cache.entry(MID, KEY) is None  # loaded while the file did not exist
    path.write_bytes(BAD_FILES["corrupt"])  # another process left garbage
    with pytest.warns(CacheWarning) as record:
        assert cache.put(FP, MID, KEY, entry())
    assert len(record) == 1 and len(glob.glob(str(path) + ".corrupt-*")) == 1
    assert json.loads(path.read_text())["machines"][MID]["entries"][KEY] == entry()


def test_foreign_machine_never_matches_and_is_kept(tmp_path):
    other_fp = {**FP, "gpu": "some other GPU", "driver": 1}
    other = machine_id(other_fp)
    assert other != MID
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(doc({other: {"fingerprint": other_fp,
                                            "entries": {KEY: entry("slow")}}})))
    cache = TuneCache(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.entry(MID, KEY) is None
        assert cache.put(FP, MID, KEY, entry())
    machines = json.loads(path.read_text())["machines"]
    assert machines[other]["entries"][KEY]["winner"] == "slow"
    assert machines[MID]["entries"][KEY]["winner"] == "fast"


def _unwritable(tmp_path, how: str) -> str:
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the file_as_folder case covers it")
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return str(folder / "tune.json")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    return str(blocker / "sub" / "tune.json")


@pytest.mark.parametrize("how", ["chmod", "file_as_folder"])
def test_read_only_folder_keeps_tuning_in_memory(tmp_path, how):
    path = _unwritable(tmp_path, how)
    cache = TuneCache(path)
    with pytest.warns(CacheWarning) as record:
        assert cache.put(FP, MID, KEY, entry()) is False
    assert len(record) == 1 and "stay in memory" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.put(FP, MID, KEY + "2", entry("slow")) is False
        assert cache.entry(MID, KEY)["winner"] == "fast"
        assert cache.entry(MID, KEY + "2")["winner"] == "slow"
    assert not cache.persistent
    cache.forget("tune_probe")
    assert cache.entry(MID, KEY) is None


def test_forget_rereads_the_file_and_clear_removes_it(tmp_path):
    path = str(tmp_path / "tune.json")
    cache = TuneCache(path)
    cache.put(FP, MID, KEY, entry())
    TuneCache(path).put(FP, MID, "other|key", entry("slow"))  # another process
    assert cache.entry(MID, "other|key") is None  # this view predates it
    cache.forget("tune_probe")
    assert cache.entry(MID, "other|key")["winner"] == "slow"
    assert cache.entry(MID, KEY)["winner"] == "fast"  # persisted entries come back
    assert cache.clear() and not os.path.exists(path)
    assert cache.entry(MID, KEY) is None and cache.clear() is False


def _writer(path: str, tag: str, count: int, start: float) -> None:
    cache = TuneCache(path)
    time.sleep(max(0.0, start - time.time()))
    for i in range(count):
        cache.put(FP, MID, f"shared|{i}", entry(tag))
        cache.put(FP, MID, f"{tag}|{i}", entry(tag))


def test_two_processes_tuning_at_once(tmp_path):
    path = str(tmp_path / "tune.json")
    ctx = multiprocessing.get_context("fork")
    start = time.time() + 0.3
    procs = [ctx.Process(target=_writer, args=(path, tag, 15, start)) for tag in ("p1", "p2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    entries = json.loads(open(path, encoding="utf-8").read())["machines"][MID]["entries"]
    for i in range(15):
        assert entries[f"p1|{i}"]["winner"] == "p1" and entries[f"p2|{i}"]["winner"] == "p2"
        assert entries[f"shared|{i}"]["winner"] in ("p1", "p2")
    assert not glob.glob(path + ".*.tmp")


def _write_forever(path: str) -> None:
    cache = TuneCache(path)
    big = {f"variant_{j}": float(j) for j in range(400)}  # a few hundred KB per write
    i = 0
    while True:
        cache.put(FP, MID, f"k|{i}", {"winner": "variant_0", "timings_us": big, "i": i})
        i += 1


@pytest.mark.parametrize("delay", [0.05, 0.12, 0.2])
def test_kill_during_write_leaves_old_or_new_file(tmp_path, delay):
    path = str(tmp_path / "tune.json")
    child = multiprocessing.get_context("fork").Process(target=_write_forever, args=(path,))
    child.start()
    deadline = time.time() + 10
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert child.exitcode == -signal.SIGKILL
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a partial file would warn and be set aside
        survivor = TuneCache(path)
        entries = survivor.machines()[MID]["entries"]
        written = sorted(e["i"] for e in entries.values())
        assert written == list(range(len(written))) and written
        assert survivor.put(FP, MID, KEY, entry())  # and the next writer tidies up
    assert not glob.glob(path + ".*.tmp")
