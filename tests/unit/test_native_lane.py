"""The native (C) fast lane: it builds, keys calls exactly like ``lane_key``, and runs them
like the Python lane; its launch objects refuse bad arguments before touching the driver.

The GPU half (launches, ``PtrRun`` on device arrays) is in
``tests/device/cuda/test_native_lane_cuda.py``.
"""

from __future__ import annotations

import ctypes
import shutil
import sysconfig

import numpy as np
import pytest
from conftest import assert_close, rand

import lightning_core as lc
from lightning_core import config, native
from lightning_core.runtime import dispatch
from lightning_core.trace.recorder import TRACE


def _has_compiler() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is not None


@pytest.fixture
def lane_mod():
    if not _has_compiler():
        pytest.skip("no C compiler here: the Python lane runs (status says why)")
    module = native.load()
    assert module is not None, native.status()
    return module


class _Data:
    def __init__(self, ptr: int, device_id: int = 0) -> None:
        self.ptr, self.device_id = ptr, device_id


class FakeDeviceArray:
    """The attributes the lane reads of a device array (CuPy's names)."""

    def __init__(self, shape, dtype=np.float32, ptr=4096, contiguous=True, device_id=0):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._c_contiguous = contiguous
        self.data = _Data(ptr, device_id)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize


def _table(lane_mod, lanes, pinned_flags=lambda arrays: ("asked", len(arrays)), fallback=None):
    calls = []

    def py_fallback(op, device, scalars, arrays, out):
        calls.append(op)
        return dispatch._lane_call_py(op, device, scalars, arrays, out)

    table = lane_mod.Table(lanes=lanes, fast_types={FakeDeviceArray}, trace=TRACE,
                           generation=config._generation, seen=dispatch._seen_generation,
                           check_generation=dispatch._check_generation,
                           fallback=fallback or py_fallback, miss=dispatch.LaneMiss,
                           pinned_flags=pinned_flags, pinned_min=dispatch.PINNED_MIN_BYTES,
                           host_type=np.ndarray, epoch=dispatch._lane_epoch)
    return table, calls


def _store(lanes, key, lane):
    """Store a lane as ``_keep_lane`` does: the epoch moves, so the table's cache drops."""
    lanes[key] = lane
    dispatch._lane_epoch[0] += 1


class _Lane:
    def __init__(self, answer):
        self.answer, self.seen = answer, []

    def run(self, arrays, out):
        self.seen.append((arrays, out))
        return self.answer


def test_status_says_loaded_and_knob_turns_it_off(lane_mod):
    assert native.status().startswith("loaded from ")
    with config.override(LC_NATIVE_LANE=False):
        assert native.load() is None
        assert native.status() == "off (LC_NATIVE_LANE=0)"
    assert native.load() is lane_mod


def test_table_builds_lane_keys_exactly(lane_mod, monkeypatch):
    """For every argument mix the C key is the Python key: a lane stored under lane_key's key
    is found, and the miss carries an equal key."""
    monkeypatch.setattr(dispatch, "_FAST_TYPES", {FakeDeviceArray})
    host = np.ones((3, 4), np.float32)
    cases = [
        ("vector_add", "cpu", ("add",), (host, host.copy()), None),
        ("matmul2d", "cuda", ("fp32",), (FakeDeviceArray((3, 4)), FakeDeviceArray((4, 2))),
         FakeDeviceArray((3, 2), ptr=8192)),
        ("relu", "auto", (), (np.ones(5, np.float64)[::2],), None),
        ("layer_norm", "cpu", (1e-5, True, False), (host, np.ones(4, np.float32)), None),
        ("softmax", "auto", (-1,), (np.ones((2, 2), np.float32),), np.empty((2, 2), np.float32)),
        ("attention2d", "cuda", (False, "fp32", 3, 4),
         (FakeDeviceArray((8, 16), contiguous=False),) * 3, None),
    ]
    readonly = host.copy()
    readonly.flags.writeable = False
    cases.append(("vector_add", "cpu", ("add",), (readonly, host), None))
    for op, device, scalars, arrays, out in cases:
        lanes = {}
        table, calls = _table(lane_mod, lanes)
        miss = table(op, device, scalars, arrays, out)
        assert type(miss) is dispatch.LaneMiss and calls == []
        expected = dispatch.lane_key(op, device, scalars, arrays, out)
        assert miss.key == expected and hash(miss.key) == hash(expected)
        lane = _Lane("done")
        _store(lanes, expected, lane)
        assert table(op, device, scalars, arrays, out) == "done"
        assert lane.seen == [(arrays, out)]


def test_table_misses_on_any_difference(lane_mod):
    a = np.ones(6, np.float32)
    lanes = {}
    table, _ = _table(lane_mod, lanes)
    _store(lanes, dispatch.lane_key("relu", "cpu", (), (a,), None), _Lane("hit"))
    assert table("relu", "cpu", (), (a,), None) == "hit"
    for op, device, scalars, arrays in (
            ("relu", "cpu", (), (np.ones(7, np.float32),)),  # shape
            ("relu", "cpu", (), (np.ones(6, np.float64),)),  # dtype
            ("relu", "cpu", (), (np.ones(12, np.float32)[::2],)),  # contiguity
            ("relu", "cuda", (), (a,)),  # device
            ("gelu", "cpu", (), (a,)),  # op
            ("relu", "cpu", (1,), (a,)),  # scalars
    ):
        assert type(table(op, device, scalars, arrays, None)) is dispatch.LaneMiss
    assert type(table("relu", "cpu", (), (a,), a)) is dispatch.LaneMiss  # an out
    # 3 and 3.0 hash alike: the scalar's type is part of the key
    _store(lanes, dispatch.lane_key("relu", "cpu", (3,), (a,), None), _Lane("int"))
    assert table("relu", "cpu", (3,), (a,), None) == "int"
    assert type(table("relu", "cpu", (3.0,), (a,), None)) is dispatch.LaneMiss


def test_table_edge_answers(lane_mod):
    a = np.ones(4, np.float32)
    lanes = {}
    table, calls = _table(lane_mod, lanes)
    miss = table("relu", 0, (), (a,), None)  # a device that is not a string: no lane at all
    assert type(miss) is dispatch.LaneMiss and miss.key is None
    miss = table("relu", "cpu", ([1],), (a,), None)  # unhashable scalar: a miss, not an error
    assert type(miss) is dispatch.LaneMiss and calls == []
    assert type(table("relu", "cpu", (), ([1.0, 2.0],), None)) is dispatch.LaneMiss
    assert calls == ["relu"]  # a list input: the Python road decides
    key = dispatch.lane_key("relu", "cpu", (), (a,), None)
    _store(lanes, key, _Lane(None))  # the lane refuses (out overlaps): the full road, with the key
    miss = table("relu", "cpu", (), (a,), None)
    assert type(miss) is dispatch.LaneMiss and miss.key == key
    with pytest.raises(TypeError):
        table("relu", "cpu", (), (a,))
    with pytest.raises(ZeroDivisionError):
        _store(lanes, key, type("Boom", (), {"run": lambda self, arrays, out: 1 / 0})())
        table("relu", "cpu", (), (a,), None)


def test_table_remembers_recent_hits_until_the_epoch_moves(lane_mod):
    a = np.ones(4, np.float32)
    lanes = {}
    table, _ = _table(lane_mod, lanes)
    key = dispatch.lane_key("relu", "cpu", (), (a,), None)
    first = _Lane("first")
    _store(lanes, key, first)
    for _ in range(3):
        assert table("relu", "cpu", (), (np.ones(4, np.float32),), None) == "first"
    lanes[key] = _Lane("second")  # replaced behind the table's back: the kept run answers
    assert table("relu", "cpu", (), (a,), None) == "first"
    dispatch._lane_epoch[0] += 1  # what _keep_lane and clear_decisions do
    assert table("relu", "cpu", (), (a,), None) == "second"
    for n in range(2, 14):  # more signatures than the table keeps: all still found
        _store(lanes, dispatch.lane_key("relu", "cpu", (), (np.ones(n),), None), _Lane(n))
    for n in list(range(2, 14)) * 2:
        assert table("relu", "cpu", (), (np.ones(n),), None) == n
    nan = float("nan")  # NaN scalars never equal each other: a miss, as in the dictionary
    _store(lanes, dispatch.lane_key("relu", "cpu", (nan,), (a,), None), _Lane("nan"))
    assert table("relu", "cpu", (nan,), (a,), None) == "nan"  # the same object: found
    assert type(table("relu", "cpu", (float("nan"),), (a,), None)) is dispatch.LaneMiss


def test_clearing_decisions_lets_the_kept_runs_go_at_once(lane_mod):
    """The table's kept runs hold their recyclers (device results): clear_decisions drops them
    at once, not at the next lane call."""
    import gc
    import weakref

    table = dispatch._native_table()
    a = np.ones(4, np.float32)
    lane = _Lane("hit")
    gone = weakref.ref(lane)
    dispatch.clear_decisions()
    _store(dispatch._lanes, dispatch.lane_key("relu", "cpu", (), (a,), None), lane)
    assert table("relu", "cpu", (), (a,), None) == "hit"
    del lane
    gc.collect()
    assert gone() is not None  # held by the dictionary and the table's kept run
    dispatch.clear_decisions()
    assert gone() is None


def test_a_kept_key_survives_a_comparison_that_drops_the_cache(lane_mod):
    """A scalar whose __eq__ runs Python code that empties the table's kept hits (here: the
    epoch moves and the table is called again) while a kept key is being compared: the answer
    stays right. (The table holds the key during the comparison; a freed key would sit in the
    tuple free list unchanged, so this runs the path rather than proving the hold.)"""
    a = np.ones(4, np.float32)
    lanes = {}
    table, _ = _table(lane_mod, lanes)

    class Sneaky:
        def __hash__(self):
            return 7

        def __eq__(self, other):
            if isinstance(other, Sneaky) and not getattr(self, "inside", False):
                self.inside = True
                dispatch._lane_epoch[0] += 1
                assert table("relu", "cpu", (), (a,), None) == "plain"
            return isinstance(other, Sneaky)

    first = Sneaky()
    _store(lanes, dispatch.lane_key("relu", "cpu", (first,), (a,), None), _Lane("sneaky"))
    _store(lanes, dispatch.lane_key("relu", "cpu", (), (a,), None), _Lane("plain"))
    assert table("relu", "cpu", (first,), (a,), None) == "sneaky"  # kept now
    for _ in range(3):
        assert table("relu", "cpu", (Sneaky(),), (a,), None) == "sneaky"


def test_table_asks_pinned_flags_only_for_big_auto_host_arrays(lane_mod):
    big = np.ones(dispatch.PINNED_MIN_BYTES // 4, np.float32)
    small = np.ones(8, np.float32)
    lanes = {}
    table, _ = _table(lane_mod, lanes)
    assert table("vector_add", "auto", ("add",), (big, small), None).key[-1] == ("asked", 2)
    assert table("vector_add", "auto", ("add",), (small, small), small).key[-1] is None
    assert table("vector_add", "cpu", ("add",), (big, big), None).key[-1] is None
    key = table("vector_add", "auto", ("add",), (small, small), big).key
    assert key[-1] == ("asked", 3)  # out counts, as in lane_key


def test_table_defers_to_python_while_tracing_and_sees_knob_changes(lane_mod):
    a = np.ones(4, np.float32)
    lanes = {}
    table, calls = _table(lane_mod, lanes)
    lc.runtime_trace_enable(True)
    try:
        table("relu", "cpu", (), (a,), None)
    finally:
        lc.runtime_trace_enable(False)
    assert calls == ["relu"]
    table, _ = _table(lane_mod, dispatch._lanes)  # the module's own lanes this time
    dispatch.clear_decisions()
    _store(dispatch._lanes, dispatch.lane_key("relu", "cpu", (), (a,), None), _Lane("hit"))
    assert table("relu", "cpu", (), (a,), None) == "hit"
    config.reload()  # the generation moves: cached decisions and lanes go
    assert type(table("relu", "cpu", (), (a,), None)) is dispatch.LaneMiss
    assert dispatch._lanes == {}


def test_ops_run_on_the_native_table_and_match_the_python_lane(lane_mod, rng, monkeypatch):
    dispatch.clear_decisions()
    a, b = rand(rng, 5, 7), rand(rng, 7, 3)
    x = rand(rng, 4, 33)
    for _ in range(3):
        got = lc.matmul2d(a, b, "cpu")
        sm = lc.softmax(x, -1, "cpu")
        ln = lc.layer_norm(x, None, None, 1e-5, "cpu")
    assert type(dispatch.lane_call) is lane_mod.Table
    monkeypatch.setattr(dispatch, "lane_call", dispatch._lane_call_py)
    assert_close(got, lc.matmul2d(a, b, "cpu"))
    assert_close(sm, lc.softmax(x, -1, "cpu"))
    assert_close(ln, lc.layer_norm(x, None, None, 1e-5, "cpu"))


def test_launch_objects_refuse_bad_arguments(lane_mod):
    fixed = np.zeros(4, np.uint64).tobytes()
    with pytest.raises(ValueError, match="parameter block"):
        lane_mod.Launch(1, (1, 1, 1), (32, 1, 1), 0, 5, fixed)  # more pointers than slots
    with pytest.raises(ValueError, match="parameter block"):
        lane_mod.Launch(1, (1, 1, 1), (32, 1, 1), 0, 1, b"123")  # not 8-byte slots
    with pytest.raises(ValueError, match="null function"):
        lane_mod.Launch(0, (1, 1, 1), (32, 1, 1), 0, 1, fixed)
    launch = lane_mod.Launch(1, (1, 1, 1), (32, 1, 1), 0, 2, fixed)
    with pytest.raises(ValueError, match="2 pointers"):
        launch(0, 1)
    with pytest.raises(OverflowError):
        launch(0, -1, 2)
    with pytest.raises(TypeError):
        launch(0, 1.5, 2)
    with pytest.raises(ValueError, match="2 arrays"):
        launch.arrays(type("S", (), {"ptr": 0})(), FakeDeviceArray((2,)))
    common = {"current": None, "take": None, "size": 1, "out_bytes": 4, "oom": (),
              "on_oom": None}
    with pytest.raises(ValueError, match="either vec and one"):  # 3 inputs: 4 pointers
        lane_mod.PtrRun(vec=launch, one=launch, in_bytes=(4, 4, 4), **common)
    with pytest.raises(ValueError, match="1 to 4 inputs"):
        lane_mod.PtrRun(vec=launch, one=launch, in_bytes=(), **common)
    with pytest.raises(ValueError, match="either vec and one"):  # both ways at once
        lane_mod.PtrRun(vec=launch, one=launch, resolve=print, in_bytes=(4,), **common)
    with pytest.raises(ValueError, match="fallback"):
        lane_mod.PtrRun(resolve=print, in_bytes=(4, 4), **common)


def test_flat_run_overlap_and_out_of_memory_before_any_launch(lane_mod):
    """An out overlapping an input answers None (the full road); an out-of-memory error from
    the recycler becomes the lane's error; both before the driver is called."""
    fixed = np.zeros(3, np.uint64).tobytes()
    launch = lane_mod.Launch(1, (1, 1, 1), (32, 1, 1), 0, 3, fixed)

    class Oom(Exception):
        pass

    def take(stream_ptr):
        assert stream_ptr == 77
        raise Oom("no room")

    def on_oom(exc):
        raise lc.DeviceOutOfMemoryError(f"[vector_add] {exc}")

    stream = type("S", (), {"ptr": 77})()
    run = lane_mod.PtrRun(vec=launch, one=launch, current=lambda: stream, take=take, size=16,
                          out_bytes=64, in_bytes=(64, 64), oom=Oom, on_oom=on_oom,
                          recycler="kept")
    a, b = FakeDeviceArray((16,), ptr=4096), FakeDeviceArray((16,), ptr=8192)
    assert run((a, b), FakeDeviceArray((16,), ptr=4096 + 60)) is None
    assert run((a, b), FakeDeviceArray((16,), ptr=8192 - 60)) is None
    with pytest.raises(lc.DeviceOutOfMemoryError, match="no room"):
        run((a, b), None)
    assert run.recycler == "kept"
    with pytest.raises(TypeError, match="tuple of 2"):
        run((a,), None)
    if not lane_mod.driver():  # no libcuda here: the launch itself is refused, clearly
        with pytest.raises(lane_mod.LaunchError, match="not available"):
            run((a, b), FakeDeviceArray((16,), ptr=16384))


def _stream_capsule(value, name=b"intptr_t (void)"):
    """A capsule like CuPy's exported get_current_stream_ptr, answering ``value``."""
    fn = ctypes.CFUNCTYPE(ctypes.c_ssize_t)(lambda: value)
    label = ctypes.create_string_buffer(name)
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p,
                                                    ctypes.c_void_p]
    return new(ctypes.cast(fn, ctypes.c_void_p), label, None), (fn, label)  # keep both alive


def test_kept_results_are_reused_in_c_and_the_stream_comes_from_the_capsule(lane_mod):
    """With the recycler's lists and CuPy's stream function, a result the caller dropped is
    handed out again without calling take or current(); a held one, or one of another
    stream, is not."""
    fixed = np.zeros(2, np.uint64).tobytes()
    launch = lane_mod.Launch(1, (1, 1, 1), (32, 1, 1), 0, 2, fixed)
    kept, streams, took = [], [], []

    def take(stream_ptr):  # the Python recycler's part: a new result, kept
        took.append(stream_ptr)
        arr = FakeDeviceArray((4,), ptr=1 << (20 + len(took)))
        kept.append(arr)
        streams.append(stream_ptr)
        return arr

    def current():
        raise AssertionError("current() is not needed with the stream function")

    capsule, alive = _stream_capsule(77)
    run = lane_mod.PtrRun(vec=launch, one=launch, current=current, take=take, size=0,
                          out_bytes=16, in_bytes=(16,), oom=(), on_oom=None, kept=kept,
                          kept_streams=streams, stream_ptr=capsule)
    x = FakeDeviceArray((4,), ptr=4096)
    first = run((x,), None)
    assert took == [77] and first is kept[0]
    held = first
    second = run((x,), None)  # the first is still held: a new one
    assert took == [77, 77] and second is kept[1] and second is not held
    del first, held, second
    for _ in range(3):  # both dropped: kept ones come back, take is not called
        again = run((x,), None)
        assert again is kept[0]
        del again
    streams[0] = streams[1] = 5  # made on another stream: not for this one
    assert run((x,), None) is not kept[0] and took == [77, 77, 77]
    del alive


def test_kept_lists_and_stream_capsule_are_checked(lane_mod):
    fixed = np.zeros(2, np.uint64).tobytes()
    launch = lane_mod.Launch(1, (1, 1, 1), (32, 1, 1), 0, 2, fixed)
    common = dict(vec=launch, one=launch, current=lambda: None, take=lambda sp: None, size=0,
                  out_bytes=16, in_bytes=(16,), oom=(), on_oom=None)
    with pytest.raises(TypeError, match="kept"):
        lane_mod.PtrRun(kept=[], **common)
    with pytest.raises(TypeError, match="kept"):
        lane_mod.PtrRun(kept=(), kept_streams=[], **common)
    capsule, alive = _stream_capsule(1, name=b"int (void)")
    with pytest.raises(ValueError):  # another signature is never called
        lane_mod.PtrRun(stream_ptr=capsule, **common)
    with pytest.raises(ValueError):
        lane_mod.PtrRun(stream_ptr="not a capsule", **common)
    del alive


def test_resolver_runs_once_per_alignment_and_stream_and_none_means_fallback(lane_mod):
    """The resolve mode: the resolver is asked once per (alignment, stream); None sends every
    such call to the fallback run (the Python road), a non-Launch answer is refused."""
    asked, fallen = [], []

    def resolve(vec, stream):
        asked.append((vec, stream.ptr))
        return None if stream.ptr == 5 else "not a launch"

    def fallback(arrays, out):
        fallen.append(out)
        return "python"

    streams = {p: type("S", (), {"ptr": p})() for p in (5, 6)}
    current = [streams[5]]
    run = lane_mod.PtrRun(resolve=resolve, vec_ok=True, fallback=fallback,
                          current=lambda: current[0], take=lambda sp: FakeDeviceArray((4,)),
                          size=4, out_bytes=16, in_bytes=(16,), oom=(), on_oom=None)
    x = FakeDeviceArray((4,), ptr=1 << 20)
    odd = FakeDeviceArray((4,), ptr=(1 << 20) + 4)
    for _ in range(3):
        assert run((x,), None) == "python"
        assert run((odd,), None) == "python"
    assert asked == [(1, 5), (0, 5)]
    assert run((x,), FakeDeviceArray((4,), ptr=1 << 24)) == "python"
    current[0] = streams[6]
    with pytest.raises(TypeError, match="Launch or None"):
        run((x,), None)
    assert len(fallen) == 7


def test_build_failure_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "cache_dir", lambda: str(tmp_path))
    native.reset()
    try:
        with config.override(LC_NATIVE_CC="/nonexistent/cc"):
            assert native.load() is None
            assert native.status().startswith("unavailable: ")
    finally:
        native.reset()


def test_threads_share_the_table_while_lanes_are_cleared(lane_mod, rng):
    """Eight threads call laned CPU ops through the native table while another clears every
    lane now and then: each result is its own call's, and nothing breaks."""
    import threading

    from lightning_core.ops.elementwise import binary_reference

    dispatch.clear_decisions()
    errors: list[BaseException] = []
    stop = threading.Event()
    inputs = [(rand(rng, 64 + i), rand(rng, 64 + i)) for i in range(8)]

    def work(i: int) -> None:
        a, b = inputs[i]
        want = binary_reference(a, b, "add")
        try:
            for _ in range(400):
                got = lc.vector_add(a, b, "cpu")
                assert np.allclose(got, want, rtol=1e-6, atol=1e-6)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def clearer() -> None:
        while not stop.wait(0.001):
            dispatch.clear_decisions()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    churn = threading.Thread(target=clearer)
    churn.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stop.set()
    churn.join(timeout=10)
    assert not errors, errors[:1]
    assert type(dispatch.lane_call) is lane_mod.Table
