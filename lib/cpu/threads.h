/* threads.h -- a small persistent thread pool for the encoder's parallel
   phases (row-block GEMMs with their fused epilogues, attention over
   (sequence, head) pairs) and a training step's (par.h).

   One pool owns the CPU in every phase: the encoder keeps OpenBLAS itself
   single-threaded and calls it from the pool's threads, so two thread pools
   never spin against each other on the same cores.

   pmx_pool_run hands out task numbers 0..ntasks-1 dynamically (an atomic
   counter), so a core slowed down by another process simply takes fewer
   tasks.  The calling thread works too; the call returns when every task is
   done.  Between jobs the workers spin briefly, then sleep (threads.c).  A
   pool is used by one caller at a time (not reentrant).  */

#ifndef PRUMUX_THREADS_H
#define PRUMUX_THREADS_H

/* FN runs task TASK on worker THREAD (0 = the caller, < pmx_pool_size).  */
typedef void (*pmx_task_fn) (void *arg, int task, int thread);

typedef struct pmx_pool pmx_pool;

/* A pool of THREADS threads in all, the caller included (THREADS - 1 are
   started).  NULL with an error if THREADS < 1 or a thread cannot start.  */
pmx_pool *pmx_pool_new (int threads);
/* Stop and join the workers.  Accepts NULL.  */
void pmx_pool_free (pmx_pool *p);
int pmx_pool_size (const pmx_pool *p);
/* Run FN (ARG, t, thread) for t = 0..NTASKS-1 and wait for all of them.
   P may be NULL: the caller's thread alone, as a pool of one.  */
void pmx_pool_run (pmx_pool *p, pmx_task_fn fn, void *arg, int ntasks);

/* The online CPUs, 1 to 256: the threads of a "use them all" default.  */
int pmx_online_cpus (void);

#endif
