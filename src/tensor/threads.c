/* One thread count for OpenBLAS and OpenMP together: two pools sized to all
 * cores each would fight over them.
 *
 * The count is one for the whole process: OpenBLAS keeps one (and its
 * OpenMP build reallocates its per-thread buffers when a call comes with
 * another count than the last, under the feet of a call running in another
 * thread).  OpenMP's count, though, is per OS thread, so each thread that
 * runs farol applies the process's count to itself before it works
 * (farol_sync_num_threads): every thread then asks OpenBLAS for the same.
 *
 * Good manners on a shared machine: OpenMP's threads spin while they wait,
 * so when another process holds one of the cores, a 2-thread run can take
 * several times as long as a 1-thread one (measured: 2.4x on ResNet-18, up
 * to 14x on the MLP).  Adaptive threads (farol_set_adaptive_threads; on
 * in the farol runner, which also makes libgomp spin only briefly:
 * src/cli/main.c; off for programs that load farol.so, which may run farol
 * on several OS threads that must keep one count): at most every 50 ms
 * (a 10 ms /proc/stat tick is then 0.2 core; the margin below is 0.3),
 * before heavy ops, farol reads how much CPU other processes used on the
 * cores it may run on (/proc/stat minus its own CPU time) and runs no more
 * threads than the cores they leave idle, back up to the count asked for
 * when they stop.  Only when more than one thread was asked for (several
 * OS threads running farol each ask for one).  Results do not change: the
 * GEMMs, convolutions and attention cut their work by shape and core
 * count, never by thread count. */
#define _GNU_SOURCE
#include "internal.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static atomic_int num_threads;        /* 0 until set: all cores */
static atomic_int active;             /* the count in use (0: as set); fewer under foreign load */
static atomic_bool adaptive = false;
static _Thread_local int applied;     /* the count this OS thread's OpenMP was given */

static void set_pools(int n) {
    atomic_store(&active, n);
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
    applied = n;
}

void farol_set_num_threads(int n) {
    if (n < 1) n = 1;
    atomic_store(&num_threads, n);
    set_pools(n);
}

void farol_sync_num_threads(void) {
    int n = atomic_load_explicit(&active, memory_order_relaxed);
    if (n > 0 && n != applied) {
        omp_set_num_threads(n);
        applied = n;
    }
}

int farol_get_num_threads(void) {
    int n = atomic_load(&num_threads);
    return n > 0 ? n : omp_get_num_procs();
}

int farol_threads_in_use(void) {
    int a = atomic_load(&active);
    return a > 0 ? a : farol_get_num_threads();
}

void farol_set_adaptive_threads(bool on) {
    atomic_store(&adaptive, on);
    if (!on) set_pools(farol_get_num_threads());
}

bool farol_adaptive_threads(void) { return atomic_load(&adaptive); }

int farol_threads_for_load(int want, int cores, double foreign) {
    /* a busy loop elsewhere gets only about half a core while we run on
     * all of them, hence the 0.3 */
    int idle = (int)((double)cores - foreign + 0.3);
    int use = want < idle ? want : idle;
    return use < 1 ? 1 : use;
}

/* busy time (user, nice, system, irq, softirq, steal) in seconds, summed
 * over the cores this process may run on; *cores = how many */
static double cores_busy_s(int *cores) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    *cores = CPU_COUNT(&set);
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    char line[256];
    unsigned long long sum = 0;
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long u, n, s, idle, io, irq, sirq, st;
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &u, &n, &s, &idle, &io, &irq,
                   &sirq, &st) != 9)
            continue;
        if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set)) sum += u + n + s + irq + sirq + st;
    }
    fclose(f);
    return (double)sum / (double)sysconf(_SC_CLK_TCK);
}

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static pthread_mutex_t adapt_lock = PTHREAD_MUTEX_INITIALIZER;
static double last_wall, last_busy, last_self;

static atomic_bool flip_for_tests;

void farol_threads_flip_for_tests(bool on) {
    atomic_store(&flip_for_tests, on);
    if (!on) set_pools(farol_get_num_threads());
}

void farol_threads_adapt(void) {
    int want = farol_get_num_threads();
    if (want < 2 || omp_in_parallel()) return;
    if (atomic_load(&flip_for_tests)) {
        set_pools(farol_threads_in_use() > 1 ? 1 : want);
        return;
    }
    if (!atomic_load(&adaptive)) return;
    if (pthread_mutex_trylock(&adapt_lock) != 0) return;
    double wall = clock_s(CLOCK_MONOTONIC_COARSE);
    if (wall - last_wall >= 0.05) {
        int cores = 1;
        double busy = cores_busy_s(&cores), self = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        if (busy >= 0 && last_wall > 0 && wall - last_wall < 5) {
            /* other processes' cores on average over the window */
            double foreign = (busy - last_busy - (self - last_self)) / (wall - last_wall);
            int use = farol_threads_for_load(want, cores, foreign);
            if (use != farol_threads_in_use()) set_pools(use);
        }
        last_wall = wall, last_busy = busy, last_self = self;
    }
    pthread_mutex_unlock(&adapt_lock);
}
