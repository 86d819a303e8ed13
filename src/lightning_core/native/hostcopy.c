/* Lightning Core's native host copy: one memcpy split over a persistent pool of pthreads.
 *
 * Staging a pageable NumPy array into pinned memory is the limit of every one-shot call that
 * starts from ordinary host memory. Python threads cannot share that copy well: each must
 * wake, take the GIL to call NumPy and take it again when done, so four of them were no faster
 * than one on the H200 host (probe_hostcopy, run 44: 4 MB in 400 us on the Python pool, 85 us
 * on eight C threads). Here the caller releases the GIL once, the workers copy parts of the
 * range in parallel and the caller copies parts too until every part is done.
 *
 * Protocol. One copy at a time (call_mu). The job's fields are written, then published by
 * storing a ticket: job id, part count and next part in one 64-bit word. A thread claims part
 * k by moving the ticket from (id, parts, k) to (id, parts, k + 1) with a compare-and-swap and
 * only then reads the fields: a successful claim means the job is not finished (part k is
 * not done), so the caller cannot be writing the next job's fields. Finished parts are
 * counted in done; the caller returns when done == parts.
 *
 * Idle workers spin on the ticket for SPIN_NS (back-to-back pieces of one upload find them
 * awake), then sleep on a condition variable; the caller wakes sleepers after publishing. A
 * copy marked last (the default; an upload marks all its pieces but the final one otherwise)
 * sends them to sleep at once: spinning threads would take cores from whatever the caller
 * runs next on the CPU.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#define MAX_THREADS 64
#define MIN_PART ((size_t)64 << 10)  /* below this a part is not worth a thread */
#define SPIN_NS 50000LL              /* how long an idle worker stays awake between pieces */
#define ID_SHIFT 40
#define PARTS_SHIFT 20
#define FIELD ((1ULL << 20) - 1)

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

static struct {
    char *dst;
    const char *src;
    size_t nbytes, part;
    int stream;
} job;
static _Atomic uint64_t ticket;     /* id << 40 | parts << 20 | next part */
static _Atomic size_t done;         /* parts finished of the published job */
static _Atomic int sleeping;        /* workers waiting on wake */
static _Atomic uint64_t rest_after; /* the id of a job marked last: no spinning after it */
static _Atomic int helpers_wanted;  /* workers with a lower index take part in the job */
static uint64_t job_id;             /* written under call_mu */
static int workers;                 /* started, under call_mu */
static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_ok;      /* the fork handler is registered: workers may be started */
static int create_failed;  /* pthread_create refused once: do not retry on every call */

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* One part: memcpy, or with stream set (x86-64) 16-byte non-temporal stores, which write
 * around the caches: no read of the destination lines first, and nothing of them left dirty
 * in a cache for a DMA engine reading them next to wait on. */
static void copy_part(char *dst, const char *src, size_t n, int stream) {
#if defined(__x86_64__)
    if (stream && n >= 256) {
        size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
        memcpy(dst, src, head);
        dst += head;
        src += head;
        n -= head;
        for (; n >= 64; n -= 64, dst += 64, src += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)src);
            __m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
            _mm_stream_si128((__m128i *)dst, a);
            _mm_stream_si128((__m128i *)(dst + 16), b);
            _mm_stream_si128((__m128i *)(dst + 32), c);
            _mm_stream_si128((__m128i *)(dst + 48), d);
        }
        memcpy(dst, src, n);
        _mm_sfence();  /* the streamed stores are visible before the part counts as done */
        return;
    }
#else
    (void)stream;
#endif
    memcpy(dst, src, n);
}

/* Claim and copy parts of the job published as id until none is left. */
static void copy_parts(uint64_t id) {
    for (;;) {
        uint64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
        uint64_t k = t & FIELD, parts = (t >> PARTS_SHIFT) & FIELD;
        if ((t >> ID_SHIFT) != id || k >= parts) return;
        if (!atomic_compare_exchange_weak_explicit(&ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        size_t lo = (size_t)k * job.part, n = job.nbytes - lo;
        if (n > job.part) n = job.part;
        copy_part(job.dst + lo, job.src + lo, n, job.stream);
        atomic_fetch_add_explicit(&done, 1, memory_order_release);
    }
}

static void *worker(void *arg) {
    const int index = (int)(intptr_t)arg;  /* 0 .. workers - 1, in the order started */
    uint64_t seen = atomic_load(&ticket) >> ID_SHIFT;
    for (;;) {
        uint64_t id = atomic_load_explicit(&ticket, memory_order_acquire) >> ID_SHIFT;
        if (id == seen && atomic_load_explicit(&rest_after, memory_order_relaxed) != seen) {
            long long until = now_ns() + SPIN_NS;
            unsigned spins = 0;
            while ((id = atomic_load_explicit(&ticket, memory_order_acquire) >> ID_SHIFT) ==
                   seen) {
                CPU_RELAX();
                if ((++spins & 255) == 0 && now_ns() > until) break;
            }
        }
        if (id == seen) {  /* nothing new while spinning, or told to rest: sleep */
            pthread_mutex_lock(&sleep_mu);
            atomic_fetch_add(&sleeping, 1);
            while ((id = atomic_load(&ticket) >> ID_SHIFT) == seen)
                pthread_cond_wait(&wake, &sleep_mu);
            atomic_fetch_sub(&sleeping, 1);
            pthread_mutex_unlock(&sleep_mu);
        }
        seen = id;
        /* A call asking for fewer threads than the pool has leaves the later workers out
         * (a stale read only changes who helps, never what is copied). */
        if (index < atomic_load(&helpers_wanted)) copy_parts(id);
    }
    return NULL;
}

/* A forked child has none of the parent's threads: start over. */
static void after_fork_child(void) {
    pthread_mutex_init(&call_mu, NULL);
    pthread_mutex_init(&sleep_mu, NULL);
    pthread_cond_init(&wake, NULL);
    workers = 0;
    create_failed = 0;
    atomic_store(&sleeping, 0);
}

static void register_atfork(void) {
    atfork_ok = pthread_atfork(NULL, NULL, after_fork_child) == 0;
}

/* Start workers until there are want of them (or as many as the system gives). None without
 * the fork handler: a forked child must not inherit a pool it does not have. Workers start
 * with every signal blocked (signals are for the interpreter's threads) and a 256 KiB stack. */
static void grow(int want) {
    pthread_once(&atfork_once, register_atfork);
    if (!atfork_ok || create_failed) return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (workers < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 << 10);
        int failed = pthread_create(&th, &attr, worker, (void *)(intptr_t)workers);
        pthread_attr_destroy(&attr);
        if (failed) {
            create_failed = 1;
            break;
        }
        workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void parallel_copy(char *dst, const char *src, size_t nbytes, int threads, int stream,
                          int last) {
    pthread_mutex_lock(&call_mu);
    grow(threads - 1);
    int helpers = workers < threads - 1 ? workers : threads - 1;
    size_t parts = (size_t)(helpers + 1) * 2;
    size_t part = (nbytes + parts - 1) / parts;
    part = (part + 4095) & ~(size_t)4095;
    if (part < MIN_PART) part = MIN_PART;
    parts = (nbytes + part - 1) / part;
    if (parts < 2 || helpers == 0) {
        pthread_mutex_unlock(&call_mu);
        copy_part(dst, src, nbytes, stream);
        return;
    }
    job.stream = stream;
    job.dst = dst;
    job.src = src;
    job.nbytes = nbytes;
    job.part = part;
    atomic_store_explicit(&done, 0, memory_order_relaxed);
    /* Ids wrap within their 24 bits and skip 0: the ticket's first value, and rest_after's
     * "none". */
    job_id = (job_id + 1) & ((1ULL << (64 - ID_SHIFT)) - 1);
    if (job_id == 0) job_id = 1;
    uint64_t id = job_id;
    atomic_store_explicit(&rest_after, last ? id : 0, memory_order_relaxed);
    atomic_store_explicit(&helpers_wanted, helpers, memory_order_relaxed);
    atomic_store(&ticket, id << ID_SHIFT | (uint64_t)parts << PARTS_SHIFT);
    if (atomic_load(&sleeping) > 0) {
        pthread_mutex_lock(&sleep_mu);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_mu);
    }
    copy_parts(id);
    unsigned spins = 0;
    while (atomic_load_explicit(&done, memory_order_acquire) < parts) {
        CPU_RELAX();
        if ((++spins & 1023) == 0) sched_yield();
    }
    pthread_mutex_unlock(&call_mu);
}

/* host_copy(dst, src, nbytes, threads[, stream[, last]]), positional only: copy nbytes from
 * address src to address dst (not overlapping) on up to threads threads, the GIL released;
 * stream (default false): with non-temporal stores (x86-64; elsewhere ignored); last (default
 * true) false: more copies follow at once, the workers stay awake for them. */
PyObject *lc_host_copy(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs < 4 || nargs > 6) {
        PyErr_SetString(PyExc_TypeError,
                        "host_copy(dst, src, nbytes, threads[, stream[, last]])");
        return NULL;
    }
    int stream = 0, last = 1;
    if (nargs >= 5 && (stream = PyObject_IsTrue(args[4])) < 0) return NULL;
    if (nargs == 6 && (last = PyObject_IsTrue(args[5])) < 0) return NULL;
    uint64_t dst = PyLong_AsUnsignedLongLong(args[0]);
    if (dst == (uint64_t)-1 && PyErr_Occurred()) return NULL;
    uint64_t src = PyLong_AsUnsignedLongLong(args[1]);
    if (src == (uint64_t)-1 && PyErr_Occurred()) return NULL;
    Py_ssize_t nbytes = PyLong_AsSsize_t(args[2]);
    if (nbytes == -1 && PyErr_Occurred()) return NULL;
    long threads = PyLong_AsLong(args[3]);
    if (threads == -1 && PyErr_Occurred()) return NULL;
    if (nbytes < 0) {
        PyErr_SetString(PyExc_ValueError, "host_copy: nbytes must not be negative");
        return NULL;
    }
    if (nbytes == 0) Py_RETURN_NONE;
    if (dst == 0 || src == 0) {
        PyErr_SetString(PyExc_ValueError, "host_copy: null address");
        return NULL;
    }
    if (dst < src + (uint64_t)nbytes && src < dst + (uint64_t)nbytes) {
        PyErr_SetString(PyExc_ValueError, "host_copy: the ranges overlap");
        return NULL;
    }
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    Py_BEGIN_ALLOW_THREADS
    if (threads == 1 || (size_t)nbytes < 2 * MIN_PART)
        copy_part((char *)(uintptr_t)dst, (const char *)(uintptr_t)src, (size_t)nbytes, stream);
    else
        parallel_copy((char *)(uintptr_t)dst, (const char *)(uintptr_t)src, (size_t)nbytes,
                      (int)threads, stream, last);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
