"""Faults around tuning never crash a call or select a wrong implementation: bad cache files,
foreign entries, wrong, NaN-producing or raising candidates, read-only cache folders and a
crossover whose calibration fails."""

from __future__ import annotations

import glob
import json
import math
import warnings

import numpy as np
import pytest

import lightning_core as lc
from lightning_core import config, tuning
from lightning_core.runtime import backend as backend_mod
from lightning_core.runtime.arrays import Operand
from lightning_core.runtime.backend import Backend, Capabilities, register
from lightning_core.runtime.device import Route
from lightning_core.runtime.dispatch import Call, execute, set_selector
from lightning_core.tuning import keys, shapes
from lightning_core.tuning.cache import KIND, SCHEMA_VERSION, CacheWarning, TuneCache
from lightning_core.tuning.crossover import Crossover
from lightning_core.tuning.keys import OpSpec, entry_key, machine_fingerprint, machine_id
from lightning_core.tuning.tuner import Tuner

KEY = "tune_probe"
SPEC = OpSpec(KEY, "contiguous", lambda c: {"n": math.prod(c.out_shape)},
              lambda x, p: x[0].astype(np.float64) + x[1], lambda d: float(d["n"]), "elementwise")
CALLS = {"right": 0}


def right(a, b, *, out):
    CALLS["right"] += 1
    np.add(a, b, out=out)


def wrong(a, b, *, out):
    out[...] = 0  # fastest of all, and wrong


def nan(a, b, *, out):
    out[...] = np.nan


def boom(a, b, *, out):
    raise RuntimeError("boom")


@pytest.fixture
def setup(monkeypatch, tmp_path):
    """Register ``variants`` of a dummy key on the cpu backend and install a private tuner."""
    monkeypatch.setitem(backend_mod._IMPLS, ("cpu", KEY), [])
    monkeypatch.setitem(keys.SPECS, KEY, SPEC)
    CALLS["right"] = 0
    lc.runtime_trace_enable(True)

    def make(variants, path=None):
        for name, fn in variants:
            register("cpu", KEY, name)(fn)
        tuner = Tuner(TuneCache(path or str(tmp_path / "tune.json")), warmup=1, runs=3,
                      budget_s=0.02)
        set_selector(tuner.select)
        return tuner

    yield make
    lc.runtime_trace_enable(False)
    tuning.install()


def run(n: int = 128, dtype=np.float32) -> str:
    """One call of the dummy key on the cpu; checks the result, returns the trace reason."""
    lc.runtime_trace_clear()
    a, b = np.arange(n, dtype=dtype), np.full(n, 2, dtype=dtype)
    call = Call(KEY, KEY, (Operand(a, False, False), Operand(b, False, False)), (n,),
                np.dtype(dtype))
    np.testing.assert_array_equal(execute(call, "cpu"), a + b)
    return lc.runtime_trace_events()[-1]["impl_reason"]


def cpu_machine() -> tuple[dict, str]:
    fp = machine_fingerprint(backend_mod.get_backend("cpu"))
    return fp, machine_id(fp)


@pytest.mark.parametrize("mode", [1, 2])
def test_corrupt_cache_warns_once_and_calls_keep_working(setup, tmp_path, mode):
    path = tmp_path / "tune.json"
    path.write_text('{"kind": "lightning_core.tune_cache", "schema_version": 1, "machi')
    setup([("right", right), ("right_too", right)])
    with config.override(LC_TUNE=mode), pytest.warns(CacheWarning) as record:
        reasons = [run(), run(200), run(300)]
    assert len(record) == 1 and len(glob.glob(str(path) + ".corrupt-*")) == 1
    if mode == 1:
        assert reasons == ["default"] * 3
    else:
        assert all(r.startswith("tuned") for r in reasons)
        assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("bad", [("wrong", wrong), ("nan", nan), ("boom", boom)])
def test_a_bad_candidate_is_rejected_and_never_selected(setup, bad):
    tuner = setup([bad, ("right", right)])  # the bad one is the dispatcher's default
    with config.override(LC_TUNE=2):
        reason = run()
    assert reason.startswith("tuned")
    (row,) = tuner.report([backend_mod.get_backend("cpu")])["entries"]
    assert row["winner"] == "right" and list(row["candidates"]) == ["right"]
    expected = {"wrong": "mismatch", "nan": "non-finite", "boom": "error: RuntimeError: boom"}
    assert row["rejected"][bad[0]].startswith(expected[bad[0]])


def test_no_valid_candidate_records_a_failure_and_caches_nothing(setup):
    tuner = setup([("wrong", wrong), ("nan", nan)])
    with config.override(LC_TUNE=2):
        lc.runtime_trace_clear()
        a = np.ones(16, np.float32)
        call = Call(KEY, KEY, (Operand(a, False, False), Operand(a, False, False)), (16,),
                    np.dtype(np.float32))
        execute(call, "cpu")
        assert lc.runtime_trace_events()[-1]["impl_reason"] == "default"
    report = tuner.report([backend_mod.get_backend("cpu")])
    assert report["entries"] == []
    (failure,) = report["failures"]
    assert set(failure["rejected"]) == {"wrong", "nan"} and failure["key"].startswith(KEY)


def _write_entry(path, fp: dict, key: str, winner: str) -> None:
    doc = {"kind": KIND, "schema_version": SCHEMA_VERSION, "machines": {
        machine_id(fp): {"fingerprint": fp, "entries": {
            key: {"winner": winner, "margin_pct": 5.0, "timings_us": {winner: 1.0}}}}}}
    path.write_text(json.dumps(doc))


def _probe_key(n: int = 128, dtype=np.float32) -> str:
    a = np.zeros(n, dtype)
    call = Call(KEY, KEY, (Operand(a, False, False),) * 2, (n,), np.dtype(dtype))
    return entry_key(SPEC, call)


@pytest.mark.parametrize("case", ["unknown_variant", "other_version", "other_dtype_only"])
def test_entries_that_do_not_apply_are_ignored(setup, tmp_path, case):
    path = tmp_path / "tune.json"
    fp, _ = cpu_machine()
    if case == "unknown_variant":
        _write_entry(path, fp, _probe_key(), "removed_variant")
    elif case == "other_version":
        _write_entry(path, {**fp, "lightning_core": "0.0.1"}, _probe_key(), "f64_only")
    else:
        _write_entry(path, fp, _probe_key(), "f64_only")
    f64_only = register("cpu", KEY, "f64_only", dtypes=("float64",))
    f64_only(right)
    setup([("right", right), ("right_too", right)])
    with config.override(LC_TUNE=1), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run() == "default"
    with config.override(LC_TUNE=1):
        set_selector(Tuner(TuneCache(str(path))).select)
        assert run(dtype=np.float64) == "default"  # a float32 entry never serves float64


def test_read_only_cache_tunes_in_memory(setup, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    setup([("right", right), ("right_too", right)], path=str(blocker / "tune.json"))
    with config.override(LC_TUNE=2), pytest.warns(CacheWarning) as record:
        first = run(100)
        searched = CALLS["right"]
        second = run(120)  # same bucket: the in-memory entry, no new search
    assert len(record) == 1 and first.startswith("tuned") and second == first
    assert CALLS["right"] <= searched + 1


class FakeCuda(Backend):
    name = "cuda"

    def capabilities(self):
        return Capabilities("cuda", True, True, True, True, True, True, details={
            "name": "Fake GPU", "compute_capability": "9.0"})


def test_crossover_failure_keeps_calls_on_the_gpu(tmp_path, monkeypatch):
    hook = Crossover(Tuner(TuneCache(str(tmp_path / "t.json"))))

    def broken(*args, **kwargs):
        raise RuntimeError("no device to measure")

    monkeypatch.setattr(hook, "calibrate", broken)
    route = Route("auto", "cuda", FakeCuda(), 0, False, "")
    call = shapes.make_call("binary", (8,))
    with config.override(LC_TUNE=1), pytest.warns(RuntimeWarning, match="crossover"):
        assert hook(route, call) is False
    with config.override(LC_TUNE=1), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hook(route, call) is False  # warned once only
