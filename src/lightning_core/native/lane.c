/* The native fast lane: the steady-state path of a laned call with no Python frames.
 *
 * Three objects, each replacing a Python hot path with the same behaviour:
 *   Launch   a prepared kernel launch (KernelCall.launch_raw / launch): the parameter block
 *            lives on the C stack of each call, so threads need no lock, and cuLaunchKernel
 *            (looked up with dlsym in the libcuda.so.1 CuPy loaded) runs with the GIL released.
 *   PtrRun   a lane's run(arrays, out) when its kernel takes the arrays' pointers only: the
 *            pointers, the overlap test against out, the current stream, a result from the
 *            lane's recycler, and the launch: by alignment between a 16-byte and a scalar one
 *            (elementwise, GEMM), or found once per (alignment, stream) by a Python resolver
 *            (attention; None there sends the call to the lane's Python run).
 *   Table    dispatch.lane_call in one C call: builds the lane key exactly as
 *            runtime.dispatch.lane_key does for device arrays of the fast types and for NumPy
 *            arrays, looks it up and runs the lane, or answers miss(key); anything else goes
 *            to the Python fallback.
 * Only public Python attributes are read (data.ptr, shape, dtype, _c_contiguous,
 * data.device_id, flags); no CuPy or CUDA header is needed to build it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef int (*cu_launch_t)(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                           unsigned by, unsigned bz, unsigned smem, void *stream,
                           void **params, void **extra);
typedef int (*cu_name_t)(int code, const char **name);

static cu_launch_t cu_launch = NULL;
static cu_name_t cu_error_name = NULL;
static PyObject *LaunchError = NULL;
static PyObject *s_data, *s_ptr, *s_shape, *s_dtype, *s_c_contig, *s_device_id, *s_enabled,
    *s_run, *s_flags, *s_c_contiguous, *s_writeable, *s_nbytes;

#define MAX_SLOTS 32
#define TABLE_CACHE 8

static int raise_launch(int code) {
    const char *name = NULL;
    if (cu_error_name == NULL || cu_error_name(code, &name) != 0 || name == NULL)
        name = "CUDA_ERROR_UNKNOWN";
    PyErr_Format(LaunchError, "cuLaunchKernel failed: %s (%d)", name, code);
    return -1;
}

/* obj.data.ptr as an unsigned 64-bit integer. */
static int ptr_of(PyObject *obj, uint64_t *out) {
    PyObject *data = PyObject_GetAttr(obj, s_data);
    if (data == NULL) return -1;
    PyObject *ptr = PyObject_GetAttr(data, s_ptr);
    Py_DECREF(data);
    if (ptr == NULL) return -1;
    *out = PyLong_AsUnsignedLongLong(ptr);
    Py_DECREF(ptr);
    return (*out == (uint64_t)-1 && PyErr_Occurred()) ? -1 : 0;
}

static int u64_of(PyObject *obj, uint64_t *out) {
    *out = PyLong_AsUnsignedLongLong(obj);
    return (*out == (uint64_t)-1 && PyErr_Occurred()) ? -1 : 0;
}

/* ---------------------------------------------------------------- Launch */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    void *fn;
    unsigned grid[3], block[3], smem;
    Py_ssize_t n_ptrs, n_slots;
    uint64_t fixed[MAX_SLOTS];
} LaunchObject;

static int do_launch(LaunchObject *self, uint64_t stream, const uint64_t *ptrs) {
    uint64_t slots[MAX_SLOTS];
    void *params[MAX_SLOTS];
    Py_ssize_t i;
    int rc;
    if (cu_launch == NULL) {
        PyErr_SetString(LaunchError, "cuLaunchKernel is not available (libcuda.so.1 not found)");
        return -1;
    }
    memcpy(slots, self->fixed, sizeof(uint64_t) * (size_t)self->n_slots);
    for (i = 0; i < self->n_ptrs; i++) slots[i] = ptrs[i];
    for (i = 0; i < self->n_slots; i++) params[i] = &slots[i];
    /* Everything the driver needs is copied out first: nothing of self is read without the
     * GIL. The driver copies the parameter values during the call: a stack block is enough. */
    void *fn = self->fn;
    unsigned gx = self->grid[0], gy = self->grid[1], gz = self->grid[2];
    unsigned bx = self->block[0], by = self->block[1], bz = self->block[2], smem = self->smem;
    Py_BEGIN_ALLOW_THREADS
    rc = cu_launch(fn, gx, gy, gz, bx, by, bz, smem, (void *)(uintptr_t)stream, params, NULL);
    Py_END_ALLOW_THREADS
    return rc ? raise_launch(rc) : 0;
}

/* launch(stream_ptr, *pointers): integers, as KernelCall.launch_raw. */
static PyObject *launch_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    LaunchObject *self = (LaunchObject *)callable;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf), i;
    uint64_t vals[MAX_SLOTS + 1];
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "Launch takes no keyword arguments");
        return NULL;
    }
    if (n != 1 + self->n_ptrs) {
        PyErr_Format(PyExc_ValueError, "Launch: expected a stream pointer and %zd pointers, got "
                     "%zd arguments", self->n_ptrs, n);
        return NULL;
    }
    for (i = 0; i < n; i++)
        if (u64_of(args[i], &vals[i]) < 0) return NULL;
    if (do_launch(self, vals[0], vals + 1) < 0) return NULL;
    Py_RETURN_NONE;
}

/* launch.arrays(stream, *arrays): reads stream.ptr and each array's data.ptr. */
static PyObject *launch_arrays(PyObject *op, PyObject *const *args, Py_ssize_t n) {
    LaunchObject *self = (LaunchObject *)op;
    uint64_t stream, ptrs[MAX_SLOTS];
    Py_ssize_t i;
    if (n != 1 + self->n_ptrs) {
        PyErr_Format(PyExc_ValueError, "Launch.arrays: expected a stream and %zd arrays, got "
                     "%zd arguments", self->n_ptrs, n);
        return NULL;
    }
    PyObject *sp = PyObject_GetAttr(args[0], s_ptr);
    if (sp == NULL) return NULL;
    int bad = u64_of(sp, &stream);
    Py_DECREF(sp);
    if (bad) return NULL;
    for (i = 1; i < n; i++)
        if (ptr_of(args[i], &ptrs[i - 1]) < 0) return NULL;
    if (do_launch(self, stream, ptrs) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *launch_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    unsigned long long fn;
    unsigned g[3], b[3], smem;
    Py_ssize_t n_ptrs, nbytes;
    const char *fixed;
    static char *kwlist[] = {"fn", "grid", "block", "smem", "n_ptrs", "fixed", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "K(III)(III)Iny#", kwlist, &fn, &g[0], &g[1],
                                     &g[2], &b[0], &b[1], &b[2], &smem, &n_ptrs, &fixed,
                                     &nbytes))
        return NULL;
    if (nbytes % 8 || nbytes / 8 > MAX_SLOTS || n_ptrs < 0 || n_ptrs > nbytes / 8 || !fn) {
        PyErr_Format(PyExc_ValueError, "Launch: bad parameter block (%zd bytes, %zd pointers, "
                     "at most %d slots) or null function", nbytes, n_ptrs, MAX_SLOTS);
        return NULL;
    }
    LaunchObject *self = (LaunchObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = launch_vectorcall;
    self->fn = (void *)(uintptr_t)fn;
    memcpy(self->grid, g, sizeof g);
    memcpy(self->block, b, sizeof b);
    self->smem = smem;
    self->n_ptrs = n_ptrs;
    self->n_slots = nbytes / 8;
    memcpy(self->fixed, fixed, (size_t)nbytes);
    return (PyObject *)self;
}

static PyMethodDef launch_methods[] = {
    {"arrays", (PyCFunction)(void (*)(void))launch_arrays, METH_FASTCALL,
     "arrays(stream, *arrays): launch on stream.ptr with each array's data.ptr"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject LaunchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lightning_core._lane.Launch",
    .tp_basicsize = sizeof(LaunchObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(LaunchObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = launch_new,
    .tp_methods = launch_methods,
    .tp_doc = "Launch(fn, grid, block, smem, n_ptrs, fixed): one prepared cuLaunchKernel.",
};

/* The dealloc of both GC-tracked types: untrack, drop the references (tp_clear), free. */
static void gc_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    Py_TYPE(self)->tp_clear(self);
    Py_TYPE(self)->tp_free(self);
}

/* ---------------------------------------------------------------- PtrRun */

#define RESOLVED 4
/* The capsule name of CuPy's get_current_stream_ptr (cupy_backends.cuda.stream.__pyx_capi__),
 * which is its C signature: a capsule of any other name is refused. */
#define STREAM_FN_SIGNATURE "intptr_t (void)"

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    LaunchObject *vec, *one;  /* pair mode: the 16-byte and the scalar launch (may be one) */
    PyObject *resolve;        /* resolve mode: resolve(vec, stream) -> Launch or None */
    PyObject *current, *take, *oom, *on_oom, *recycler, *fallback;
    /* The recycler's kept results and their streams (its own lists, changed in place only):
     * one whose only reference is the list is free for this call's stream. */
    PyObject *kept, *kept_streams;
    /* CuPy's C function for the current stream's pointer (None: current().ptr). */
    intptr_t (*stream_fn)(void);
    Py_ssize_t n_in, size;
    int vec_ok;
    uint64_t out_bytes, in_bytes[4];
    /* resolve mode: the launches found for (vec, stream) so far (Py_None: the fallback runs) */
    uint64_t found_stream[RESOLVED];
    int found_vec[RESOLVED], found_next;
    PyObject *found[RESOLVED];
} PtrRunObject;

/* An exception from take or the launch: the lane's out-of-memory error when it is one. */
static PyObject *run_fail(PtrRunObject *self) {
    if (self->oom != Py_None && PyErr_ExceptionMatches(self->oom)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *res = PyObject_CallOneArg(self->on_oom, value ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        Py_XDECREF(res);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "PtrRun: on_oom returned without raising");
    }
    return NULL;
}

/* The launch for this call (borrowed), Py_None when the Python fallback must run it, NULL on
 * error. *stream: the current stream object, fetched here when the resolver needs it. */
static PyObject *pick_launch(PtrRunObject *self, PyObject **stream, uint64_t stream_ptr,
                             const uint64_t *ptrs) {
    uint64_t mask = 0;
    Py_ssize_t i;
    for (i = 0; i <= self->n_in; i++) mask |= ptrs[i];
    int vec = self->vec_ok && !(mask & 15);
    if (self->resolve == NULL) return (PyObject *)(vec ? self->vec : self->one);
    for (i = 0; i < RESOLVED; i++)
        if (self->found[i] != NULL && self->found_stream[i] == stream_ptr &&
            self->found_vec[i] == vec)
            return self->found[i];
    if (*stream == NULL && (*stream = PyObject_CallNoArgs(self->current)) == NULL) return NULL;
    PyObject *v = PyLong_FromLong(vec);
    if (v == NULL) return NULL;
    PyObject *got = PyObject_CallFunctionObjArgs(self->resolve, v, *stream, NULL);
    Py_DECREF(v);
    if (got == NULL) return NULL;
    if (got != Py_None && !PyObject_TypeCheck(got, &LaunchType)) {
        Py_DECREF(got);
        PyErr_SetString(PyExc_TypeError, "PtrRun: resolve must return a Launch or None");
        return NULL;
    }
    i = self->found_next;
    self->found_next = (int)((i + 1) % RESOLVED);
    Py_XSETREF(self->found[i], got);
    self->found_stream[i] = stream_ptr;
    self->found_vec[i] = vec;
    return got;
}

/* A kept result nobody else holds, made on stream_ptr (a new reference), else NULL (with an
 * error set only on failure): the recycler's take() without a Python frame. Its lists are
 * read under the GIL with no Python code run in between, as take() reads them. */
static PyObject *take_kept(PtrRunObject *self, uint64_t stream_ptr) {
#ifdef Py_GIL_DISABLED
    (void)self; (void)stream_ptr;
    return NULL;  /* reference counts are not one number there: take() decides */
#else
    if (self->kept == NULL) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(self->kept), i;
    if (n != PyList_GET_SIZE(self->kept_streams)) return NULL;
    for (i = 0; i < n; i++) {
        PyObject *arr = PyList_GET_ITEM(self->kept, i);
        if (Py_REFCNT(arr) != 1) continue;
        uint64_t s;
        if (u64_of(PyList_GET_ITEM(self->kept_streams, i), &s) < 0) return NULL;
        if (s == stream_ptr) return Py_NewRef(arr);
    }
    return NULL;
#endif
}

/* run(arrays, out) -> result, out, or None when out overlaps an input (the full road). */
static PyObject *run_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames) {
    PtrRunObject *self = (PtrRunObject *)callable;
    uint64_t ptrs[5], stream_ptr;
    Py_ssize_t i;
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "PtrRun takes (arrays, out)");
        return NULL;
    }
    PyObject *arrays = args[0], *out = args[1], *result = NULL;
    if (!PyTuple_Check(arrays) || PyTuple_GET_SIZE(arrays) != self->n_in) {
        PyErr_Format(PyExc_TypeError, "PtrRun: expected a tuple of %zd arrays", self->n_in);
        return NULL;
    }
    for (i = 0; i < self->n_in; i++)
        if (ptr_of(PyTuple_GET_ITEM(arrays, i), &ptrs[i]) < 0) return NULL;
    if (out != Py_None) {
        uint64_t lo, hi;
        if (ptr_of(out, &lo) < 0) return NULL;
        hi = lo + self->out_bytes;
        for (i = 0; i < self->n_in; i++)
            if (ptrs[i] < hi && lo < ptrs[i] + self->in_bytes[i]) Py_RETURN_NONE;
        ptrs[self->n_in] = lo;
    }
    PyObject *stream = NULL, *sp = NULL;
    if (self->stream_fn != NULL) {
        stream_ptr = (uint64_t)self->stream_fn();
        if (PyErr_Occurred()) return NULL;
    } else {
        stream = PyObject_CallNoArgs(self->current);
        if (stream == NULL) return NULL;
        sp = PyObject_GetAttr(stream, s_ptr);
        if (sp == NULL || u64_of(sp, &stream_ptr) < 0) goto done;
    }
    if (out == Py_None) {
        result = take_kept(self, stream_ptr);
        if (result == NULL) {
            if (PyErr_Occurred()) goto done;
            if (sp == NULL && (sp = PyLong_FromUnsignedLongLong(stream_ptr)) == NULL) goto done;
            result = PyObject_CallOneArg(self->take, sp);
            if (result == NULL) {
                run_fail(self);
                goto done;
            }
        }
        if (ptr_of(result, &ptrs[self->n_in]) < 0) goto fail;
    } else {
        result = Py_NewRef(out);
    }
    if (self->size) {
        PyObject *launch = pick_launch(self, &stream, stream_ptr, ptrs);
        if (launch == NULL) goto fail;
        if (launch == Py_None) {  /* no kernel for this case: the Python road runs it */
            Py_CLEAR(result);
            PyObject *call_args[2] = {arrays, out};
            result = PyObject_Vectorcall(self->fallback, call_args, 2, NULL);
            goto done;
        }
        /* Held while in use: another thread may replace the resolved launch meanwhile. */
        Py_INCREF(launch);
        int failed = do_launch((LaunchObject *)launch, stream_ptr, ptrs) < 0;
        Py_DECREF(launch);
        if (failed) {
            Py_CLEAR(result);
            run_fail(self);
            goto done;
        }
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    Py_XDECREF(sp);
    Py_XDECREF(stream);
    return result;
}

static PyObject *run_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *vec = Py_None, *one = Py_None, *resolve = Py_None, *current, *take, *oom, *on_oom,
             *in_bytes, *recycler = Py_None, *fallback = Py_None, *kept = Py_None,
             *kept_streams = Py_None, *stream_ptr = Py_None;
    Py_ssize_t size;
    int vec_ok = 1;
    unsigned long long out_bytes;
    static char *kwlist[] = {"current", "take", "size", "out_bytes", "in_bytes", "oom",
                             "on_oom", "vec", "one", "resolve", "vec_ok", "fallback",
                             "recycler", "kept", "kept_streams", "stream_ptr", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOnKO!OO|$OOOpOOOOO", kwlist, &current,
                                     &take, &size, &out_bytes, &PyTuple_Type, &in_bytes, &oom,
                                     &on_oom, &vec, &one, &resolve, &vec_ok, &fallback,
                                     &recycler, &kept, &kept_streams, &stream_ptr))
        return NULL;
    if ((kept == Py_None) != (kept_streams == Py_None) ||
        (kept != Py_None && (!PyList_CheckExact(kept) || !PyList_CheckExact(kept_streams)))) {
        PyErr_SetString(PyExc_TypeError, "PtrRun: kept and kept_streams are lists, or neither");
        return NULL;
    }
    intptr_t (*stream_fn)(void) = NULL;
    if (stream_ptr != Py_None) {
        /* Only a capsule naming exactly this signature: any other may not be callable so. */
        stream_fn = (intptr_t (*)(void))PyCapsule_GetPointer(stream_ptr, STREAM_FN_SIGNATURE);
        if (stream_fn == NULL) return NULL;
    }
    Py_ssize_t n_in = PyTuple_GET_SIZE(in_bytes), i;
    int pair = vec != Py_None && one != Py_None;
    if (n_in < 1 || n_in > 4) {
        PyErr_SetString(PyExc_ValueError, "PtrRun: 1 to 4 inputs");
        return NULL;
    }
    if (pair == (resolve != Py_None) ||
        (pair && (!PyObject_TypeCheck(vec, &LaunchType) || !PyObject_TypeCheck(one, &LaunchType)
                  || ((LaunchObject *)vec)->n_ptrs != n_in + 1
                  || ((LaunchObject *)one)->n_ptrs != n_in + 1))) {
        PyErr_SetString(PyExc_ValueError, "PtrRun: either vec and one (Launch objects taking "
                        "the inputs' and the output's pointers) or resolve");
        return NULL;
    }
    if (resolve != Py_None && fallback == Py_None) {
        PyErr_SetString(PyExc_ValueError, "PtrRun: resolve needs a fallback run");
        return NULL;
    }
    PtrRunObject *self = (PtrRunObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    for (i = 0; i < n_in; i++)
        if (u64_of(PyTuple_GET_ITEM(in_bytes, i), &self->in_bytes[i]) < 0) {
            Py_DECREF(self);
            return NULL;
        }
    self->vectorcall = run_vectorcall;
    if (pair) {
        self->vec = (LaunchObject *)Py_NewRef(vec);
        self->one = (LaunchObject *)Py_NewRef(one);
    } else {
        self->resolve = Py_NewRef(resolve);
    }
    self->current = Py_NewRef(current);
    self->take = Py_NewRef(take);
    self->oom = Py_NewRef(oom);
    self->on_oom = Py_NewRef(on_oom);
    self->recycler = Py_NewRef(recycler);
    self->fallback = Py_NewRef(fallback);
    if (kept != Py_None) {
        self->kept = Py_NewRef(kept);
        self->kept_streams = Py_NewRef(kept_streams);
    }
    self->stream_fn = stream_fn;
    self->n_in = n_in;
    self->size = size;
    self->vec_ok = vec_ok;
    self->out_bytes = out_bytes;
    return (PyObject *)self;
}

static int run_traverse(PtrRunObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->vec); Py_VISIT(self->one); Py_VISIT(self->resolve); Py_VISIT(self->current);
    Py_VISIT(self->take); Py_VISIT(self->oom); Py_VISIT(self->on_oom); Py_VISIT(self->recycler);
    Py_VISIT(self->fallback); Py_VISIT(self->kept); Py_VISIT(self->kept_streams);
    for (int i = 0; i < RESOLVED; i++) Py_VISIT(self->found[i]);
    return 0;
}

static int run_clear(PtrRunObject *self) {
    Py_CLEAR(self->vec); Py_CLEAR(self->one); Py_CLEAR(self->resolve); Py_CLEAR(self->current);
    Py_CLEAR(self->take); Py_CLEAR(self->oom); Py_CLEAR(self->on_oom); Py_CLEAR(self->recycler);
    Py_CLEAR(self->fallback); Py_CLEAR(self->kept); Py_CLEAR(self->kept_streams);
    for (int i = 0; i < RESOLVED; i++) Py_CLEAR(self->found[i]);
    return 0;
}


static PyObject *run_get_recycler(PtrRunObject *self, void *closure) {
    return Py_NewRef(self->recycler);
}

static PyGetSetDef run_getset[] = {
    {"recycler", (getter)run_get_recycler, NULL, "the lane's result recycler", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject PtrRunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lightning_core._lane.PtrRun",
    .tp_basicsize = sizeof(PtrRunObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_vectorcall_offset = offsetof(PtrRunObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = run_new,
    .tp_dealloc = gc_dealloc,
    .tp_traverse = (traverseproc)run_traverse,
    .tp_clear = (inquiry)run_clear,
    .tp_getset = run_getset,
    .tp_doc = "PtrRun(...): a lane's run(arrays, out) when its launch takes array pointers only.",
};

/* ---------------------------------------------------------------- Table */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *lanes, *fast_types, *trace, *gen, *seen, *check_generation, *fallback, *miss,
        *pinned_flags, *host_type, *epoch;
    Py_ssize_t pinned_min;
    /* The last keys found and their lanes' runs: a repeated call compares its key with these
     * instead of hashing it. Dropped whenever the lanes' epoch moves (a lane stored, or all
     * of them cleared). */
    long seen_epoch;
    int cache_next;
    PyObject *cache_keys[TABLE_CACHE], *cache_runs[TABLE_CACHE];
} TableObject;

static void cache_drop(TableObject *self) {
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_CLEAR(self->cache_keys[i]);
        Py_CLEAR(self->cache_runs[i]);
    }
    self->cache_next = 0;
}

/* Key equality as the dictionary sees it for our keys: item by item, identity first. */
static int same_key(PyObject *a, PyObject *b) {
    Py_ssize_t n = PyTuple_GET_SIZE(a), i;
    if (n != PyTuple_GET_SIZE(b)) return 0;
    for (i = 0; i < n; i++) {
        PyObject *x = PyTuple_GET_ITEM(a, i), *y = PyTuple_GET_ITEM(b, i);
        if (x == y) continue;
        int r = PyObject_RichCompareBool(x, y, Py_EQ);
        if (r <= 0) return r;
    }
    return 1;
}

/* The run of the lane stored under key (a new reference), NULL with no error set when there
 * is none, NULL with an error set on failure. */
static PyObject *find_run(TableObject *self, PyObject *key) {
    PyObject *epoch = PyList_GET_ITEM(self->epoch, 0);
    long now = PyLong_AsLong(epoch);
    int i;
    if (now == -1 && PyErr_Occurred()) return NULL;
    if (now != self->seen_epoch) {
        cache_drop(self);
        self->seen_epoch = now;
    }
    for (i = 0; i < TABLE_CACHE; i++) {
        /* Held while compared: a scalar's __eq__ may run Python code, and another thread may
         * drop or refill the slot meanwhile. */
        PyObject *kept = self->cache_keys[i], *run = self->cache_runs[i];
        if (kept == NULL) break;
        Py_INCREF(kept);
        Py_INCREF(run);
        int r = same_key(kept, key);
        Py_DECREF(kept);
        if (r) {
            if (r < 0) Py_CLEAR(run);
            return run;  /* a new reference, or NULL with the error set */
        }
        Py_DECREF(run);
    }
    PyObject *lane = PyDict_GetItemWithError(self->lanes, key);
    if (lane == NULL) return NULL;
    Py_INCREF(lane);
    PyObject *run = PyObject_GetAttr(lane, s_run);
    Py_DECREF(lane);
    if (run == NULL) return NULL;
    i = self->cache_next;
    self->cache_next = (i + 1) % TABLE_CACHE;
    Py_XSETREF(self->cache_keys[i], Py_NewRef(key));
    Py_XSETREF(self->cache_runs[i], Py_NewRef(run));
    return run;
}

/* Appends the five signature fields of x at key[*at]; 1 when x is not a type we key here,
 * -1 on error. *big is set when x is a host array of at least pinned_min bytes. */
static int put_signature(TableObject *self, PyObject *key, Py_ssize_t *at, PyObject *x,
                         int *big) {
    PyTypeObject *t = Py_TYPE(x);
    PyObject *f[5] = {NULL, NULL, NULL, NULL, NULL};
    int i;
    if ((PyObject *)t == self->host_type) {
        PyObject *flags = PyObject_GetAttr(x, s_flags);
        if (flags == NULL) return -1;
        f[3] = PyObject_GetAttr(flags, s_c_contiguous);
        f[4] = f[3] ? PyObject_GetAttr(flags, s_writeable) : NULL;
        Py_DECREF(flags);
        if (f[4] == NULL) goto fail;
        PyObject *nb = PyObject_GetAttr(x, s_nbytes);
        if (nb == NULL) goto fail;
        Py_ssize_t nbytes = PyLong_AsSsize_t(nb);
        Py_DECREF(nb);
        if (nbytes == -1 && PyErr_Occurred()) goto fail;
        if (nbytes >= self->pinned_min) *big = 1;
    } else {
        int known = PySet_Contains(self->fast_types, (PyObject *)t);
        if (known <= 0) return known < 0 ? -1 : 1;
        f[3] = PyObject_GetAttr(x, s_c_contig);
        if (f[3] == NULL) goto fail;
        PyObject *data = PyObject_GetAttr(x, s_data);
        if (data == NULL) goto fail;
        f[4] = PyObject_GetAttr(data, s_device_id);
        Py_DECREF(data);
        if (f[4] == NULL) goto fail;
    }
    f[1] = PyObject_GetAttr(x, s_shape);
    if (f[1] == NULL) goto fail;
    f[2] = PyObject_GetAttr(x, s_dtype);
    if (f[2] == NULL) goto fail;
    Py_INCREF(t);
    f[0] = (PyObject *)t;
    for (i = 0; i < 5; i++) PyTuple_SET_ITEM(key, (*at)++, f[i]);
    return 0;
fail:
    for (i = 0; i < 5; i++) Py_XDECREF(f[i]);
    return -1;
}

static PyObject *table_fallback(TableObject *self, PyObject *const *args) {
    return PyObject_Vectorcall(self->fallback, args, 5, NULL);
}

/* table(op, device, scalars, arrays, out) -> the lane's result, or miss(key) (the caller's
 * full road installs the lane under that key; key None: the call cannot have one). */
static PyObject *table_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames) {
    TableObject *self = (TableObject *)callable;
    Py_ssize_t i, at;
    if (PyVectorcall_NARGS(nargsf) != 5 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "Table takes (op, device, scalars, arrays, out)");
        return NULL;
    }
    PyObject *op = args[0], *device = args[1], *scalars = args[2], *arrays = args[3],
             *out = args[4];
    if (!PyUnicode_CheckExact(device)) return PyObject_CallOneArg(self->miss, Py_None);
    if (!PyTuple_CheckExact(scalars) || !PyTuple_CheckExact(arrays))
        return table_fallback(self, args);
    /* Knob values may have changed: the Python check drops every cached decision. */
    PyObject *g = PyList_GET_ITEM(self->gen, 0), *s = PyList_GET_ITEM(self->seen, 0);
    if (g != s) {
        int differ = PyObject_RichCompareBool(g, s, Py_NE);
        if (differ < 0) return NULL;
        if (differ) {
            PyObject *r = PyObject_CallNoArgs(self->check_generation);
            if (r == NULL) return NULL;
            Py_DECREF(r);
        }
    }
    PyObject *enabled = PyObject_GetAttr(self->trace, s_enabled);
    if (enabled == NULL) return NULL;
    int tracing = PyObject_IsTrue(enabled);
    Py_DECREF(enabled);
    if (tracing) return table_fallback(self, args);  /* the Python lane records the event */
    Py_ssize_t n_sc = PyTuple_GET_SIZE(scalars), n_arr = PyTuple_GET_SIZE(arrays);
    int has_out = out != Py_None;
    PyObject *key = PyTuple_New(4 + n_sc + 5 * (n_arr + has_out) + 1);
    if (key == NULL) return NULL;
    Py_INCREF(op); PyTuple_SET_ITEM(key, 0, op);
    Py_INCREF(device); PyTuple_SET_ITEM(key, 1, device);
    Py_INCREF(scalars); PyTuple_SET_ITEM(key, 2, scalars);
    for (i = 0; i < n_sc; i++) {
        PyObject *t = (PyObject *)Py_TYPE(PyTuple_GET_ITEM(scalars, i));
        Py_INCREF(t);
        PyTuple_SET_ITEM(key, 3 + i, t);
    }
    PyObject *flag = has_out ? Py_True : Py_False;
    Py_INCREF(flag);
    PyTuple_SET_ITEM(key, 3 + n_sc, flag);
    at = 4 + n_sc;
    int big = 0;
    for (i = 0; i < n_arr + has_out; i++) {
        PyObject *x = i < n_arr ? PyTuple_GET_ITEM(arrays, i) : out;
        int r = put_signature(self, key, &at, x, &big);
        if (r) {
            Py_DECREF(key);  /* unset slots are NULL: tuple dealloc skips them */
            return r < 0 ? NULL : table_fallback(self, args);
        }
    }
    PyObject *pinned = Py_None;
    Py_INCREF(Py_None);
    if (big && PyUnicode_CompareWithASCIIString(device, "auto") == 0) {
        PyObject *every = arrays;
        Py_INCREF(every);
        if (has_out) {
            Py_DECREF(every);
            every = PyTuple_New(n_arr + 1);
            if (every == NULL) {
                Py_DECREF(pinned);
                Py_DECREF(key);
                return NULL;
            }
            for (i = 0; i <= n_arr; i++) {
                PyObject *x = i < n_arr ? PyTuple_GET_ITEM(arrays, i) : out;
                Py_INCREF(x);
                PyTuple_SET_ITEM(every, i, x);
            }
        }
        Py_DECREF(pinned);
        pinned = PyObject_CallOneArg(self->pinned_flags, every);
        Py_DECREF(every);
        if (pinned == NULL) {
            Py_DECREF(key);
            return NULL;
        }
    }
    PyTuple_SET_ITEM(key, at, pinned);
    PyObject *result, *run = find_run(self, key);
    if (run == NULL) {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
                Py_DECREF(key);
                return NULL;
            }
            PyErr_Clear();  /* unhashable arguments never have a lane */
        }
        result = PyObject_CallOneArg(self->miss, key);
        Py_DECREF(key);
        return result;
    }
    PyObject *call_args[2] = {arrays, out};
    result = PyObject_Vectorcall(run, call_args, 2, NULL);
    Py_DECREF(run);
    if (result == Py_None) {  /* out overlaps an input: the full road, with the key */
        Py_DECREF(result);
        result = PyObject_CallOneArg(self->miss, key);
    }
    Py_DECREF(key);
    return result;
}

static PyObject *table_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *lanes, *fast_types, *trace, *gen, *seen, *check, *fallback, *miss, *pinned,
        *host_type, *epoch;
    Py_ssize_t pinned_min;
    static char *kwlist[] = {"lanes", "fast_types", "trace", "generation", "seen",
                             "check_generation", "fallback", "miss", "pinned_flags",
                             "pinned_min", "host_type", "epoch", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OO!O!OOOOnO!O!", kwlist, &PyDict_Type,
                                     &lanes, &PySet_Type, &fast_types, &trace, &PyList_Type, &gen,
                                     &PyList_Type, &seen, &check, &fallback, &miss, &pinned,
                                     &pinned_min, &PyType_Type, &host_type, &PyList_Type,
                                     &epoch))
        return NULL;
    if (PyList_GET_SIZE(gen) < 1 || PyList_GET_SIZE(seen) < 1 || PyList_GET_SIZE(epoch) < 1) {
        PyErr_SetString(PyExc_ValueError, "Table: generation, seen and epoch must hold one "
                        "number");
        return NULL;
    }
    TableObject *self = (TableObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = table_vectorcall;
    PyObject **slots[] = {&self->lanes, &self->fast_types, &self->trace, &self->gen,
                          &self->seen, &self->check_generation, &self->fallback, &self->miss,
                          &self->pinned_flags, &self->host_type, &self->epoch};
    PyObject *values[] = {lanes, fast_types, trace, gen, seen, check, fallback, miss, pinned,
                          host_type, epoch};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        Py_INCREF(values[i]);
        *slots[i] = values[i];
    }
    self->pinned_min = pinned_min;
    self->seen_epoch = -1;
    return (PyObject *)self;
}

static int table_traverse(TableObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->lanes); Py_VISIT(self->fast_types); Py_VISIT(self->trace);
    Py_VISIT(self->gen); Py_VISIT(self->seen); Py_VISIT(self->check_generation);
    Py_VISIT(self->fallback); Py_VISIT(self->miss); Py_VISIT(self->pinned_flags);
    Py_VISIT(self->host_type); Py_VISIT(self->epoch);
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_VISIT(self->cache_keys[i]);
        Py_VISIT(self->cache_runs[i]);
    }
    return 0;
}

static int table_clear(TableObject *self) {
    Py_CLEAR(self->lanes); Py_CLEAR(self->fast_types); Py_CLEAR(self->trace);
    Py_CLEAR(self->gen); Py_CLEAR(self->seen); Py_CLEAR(self->check_generation);
    Py_CLEAR(self->fallback); Py_CLEAR(self->miss); Py_CLEAR(self->pinned_flags);
    Py_CLEAR(self->host_type); Py_CLEAR(self->epoch);
    cache_drop(self);
    return 0;
}


/* forget(): drop the kept runs now (their recyclers' results go back to the pool). */
static PyObject *table_forget(PyObject *op, PyObject *unused) {
    cache_drop((TableObject *)op);
    Py_RETURN_NONE;
}

static PyMethodDef table_methods[] = {
    {"forget", table_forget, METH_NOARGS, "forget(): drop the runs of the last hits"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lightning_core._lane.Table",
    .tp_basicsize = sizeof(TableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_vectorcall_offset = offsetof(TableObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = table_new,
    .tp_dealloc = gc_dealloc,
    .tp_traverse = (traverseproc)table_traverse,
    .tp_clear = (inquiry)table_clear,
    .tp_methods = table_methods,
    .tp_doc = "Table(...): dispatch.lane_call in C (key, lookup, run).",
};

/* ---------------------------------------------------------------- module */

/* driver(): True when cuLaunchKernel was found in the already-loaded libcuda.so.1. */
static PyObject *lane_driver(PyObject *module, PyObject *unused) {
    if (cu_launch == NULL) {
        void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (lib == NULL) lib = dlopen("libcuda.so.1", RTLD_NOW);
        if (lib != NULL) {
            cu_error_name = (cu_name_t)dlsym(lib, "cuGetErrorName");
            cu_launch = (cu_launch_t)dlsym(lib, "cuLaunchKernel");
        }
    }
    return PyBool_FromLong(cu_launch != NULL);
}

/* hostcopy.c: the parallel host copy (staging pageable arrays into pinned memory). */
PyObject *lc_host_copy(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

static PyMethodDef module_methods[] = {
    {"driver", lane_driver, METH_NOARGS,
     "driver() -> bool: look up cuLaunchKernel in libcuda.so.1 (True when found)"},
    {"host_copy", (PyCFunction)(void (*)(void))lc_host_copy, METH_FASTCALL,
     "host_copy(dst, src, nbytes, threads[, stream[, last]]): copy between host addresses on "
     "a thread pool (stream: non-temporal stores; last false: more copies follow)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef lane_module = {PyModuleDef_HEAD_INIT, "_lane",
                                         "Lightning Core's native fast lane.", -1,
                                         module_methods};

PyMODINIT_FUNC PyInit__lane(void) {
    PyObject *m;
    if (PyType_Ready(&LaunchType) < 0 || PyType_Ready(&PtrRunType) < 0 ||
        PyType_Ready(&TableType) < 0)
        return NULL;
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(s_data, "data"); INTERN(s_ptr, "ptr"); INTERN(s_shape, "shape");
    INTERN(s_dtype, "dtype"); INTERN(s_c_contig, "_c_contiguous");
    INTERN(s_device_id, "device_id"); INTERN(s_enabled, "enabled"); INTERN(s_run, "run");
    INTERN(s_flags, "flags"); INTERN(s_c_contiguous, "c_contiguous");
    INTERN(s_writeable, "writeable"); INTERN(s_nbytes, "nbytes");
#undef INTERN
    m = PyModule_Create(&lane_module);
    if (m == NULL) return NULL;
    LaunchError = PyErr_NewException("lightning_core._lane.LaunchError", PyExc_RuntimeError,
                                     NULL);
    if (LaunchError == NULL || PyModule_AddObjectRef(m, "LaunchError", LaunchError) < 0 ||
        PyModule_AddObjectRef(m, "Launch", (PyObject *)&LaunchType) < 0 ||
        PyModule_AddObjectRef(m, "PtrRun", (PyObject *)&PtrRunType) < 0 ||
        PyModule_AddObjectRef(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
