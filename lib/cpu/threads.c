/* threads.c -- the thread pool of the encoder, the multiplexer and training
   (threads.h).

   Between jobs a worker first spins a little (SPIN polls, some tens of
   microseconds) and then sleeps on a condition variable, and the caller
   waits for the last worker the same way.  A training step runs hundreds
   of jobs, many of a millisecond or less, with short gaps between them:
   waking a sleeping thread costs a few microseconds of system calls on
   each side and far more in a virtual machine (on a 2-core Zen 4 guest,
   3 % of a MiniLM-size training step was the kernel's wake-up path).
   Sleeping workers leave the cores to other processes; the spinning
   gives up the core's pipeline to its sibling (pause).  A pool with more
   threads than the CPUs it may run on never spins: there a spinning
   thread would hold a CPU that a thread with work is waiting for (2-core
   machine, empty jobs: 2 threads 33 -> 0.3 microseconds a job with the
   spinning, but 3 threads 48 -> 84 and 8 threads 72 -> 230).  */

#define _GNU_SOURCE 1           /* sched_getaffinity, CPU_COUNT */
#include <config.h>
#include "threads.h"
#include "error.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined __x86_64__ || defined __i386__
# include <immintrin.h>
# define cpu_relax() _mm_pause ()
#else
# define cpu_relax() ((void) 0)
#endif

/* Polls before sleeping: about 20 to 100 microseconds of pause
   instructions, whatever the core.  */
enum { SPIN = 2000 };

struct pmx_pool
{
  int size;
  int spin;                     /* polls before sleeping: SPIN or 0 */
  pthread_t *tid;               /* size - 1 workers */
  pthread_mutex_t lock;
  pthread_cond_t start, done;
  atomic_ulong generation;      /* bumped for every job, after its fields */
  atomic_int busy;              /* workers still in the current job */
  atomic_int quit;
  int sleepers;                 /* workers waiting on START (under LOCK) */
  int waiting;                  /* the caller waits on DONE (under LOCK) */
  pmx_task_fn fn;
  void *arg;
  int ntasks;
  atomic_int next;              /* next task number to hand out */
};

struct worker_arg
{
  pmx_pool *pool;
  int index;
};

static void
work (pmx_pool *p, int thread)
{
  for (;;)
    {
      int t = atomic_fetch_add_explicit (&p->next, 1, memory_order_relaxed);
      if (t >= p->ntasks)
        break;
      p->fn (p->arg, t, thread);
    }
}

/* Wait for a generation other than SEEN (or quit): spin, then sleep.  */
static unsigned long
wait_job (pmx_pool *p, unsigned long seen)
{
  unsigned long g;
  for (int i = 0; i < p->spin; i++)
    {
      g = atomic_load_explicit (&p->generation, memory_order_acquire);
      if (g != seen || atomic_load (&p->quit))
        return g;
      cpu_relax ();
    }
  pthread_mutex_lock (&p->lock);
  p->sleepers++;
  while ((g = atomic_load (&p->generation)) == seen && !atomic_load (&p->quit))
    pthread_cond_wait (&p->start, &p->lock);
  p->sleepers--;
  pthread_mutex_unlock (&p->lock);
  return g;
}

static void *
worker_main (void *varg)
{
  struct worker_arg *wa = varg;
  pmx_pool *p = wa->pool;
  int index = wa->index;
  free (wa);
  unsigned long seen = 0;
  for (;;)
    {
      seen = wait_job (p, seen);
      if (atomic_load (&p->quit))
        break;
      work (p, index);
      if (atomic_fetch_sub (&p->busy, 1) == 1)
        {
          pthread_mutex_lock (&p->lock);
          if (p->waiting)
            pthread_cond_signal (&p->done);
          pthread_mutex_unlock (&p->lock);
        }
    }
  return NULL;
}

/* The CPUs this process may run on (its affinity mask: taskset, cgroup
   cpusets), else the online ones.  */
static int
usable_cpus (void)
{
#ifdef CPU_COUNT
  cpu_set_t set;
  if (sched_getaffinity (0, sizeof set, &set) == 0 && CPU_COUNT (&set) > 0)
    return CPU_COUNT (&set);
#endif
  return pmx_online_cpus ();
}

pmx_pool *
pmx_pool_new (int threads)
{
  if (threads < 1)
    {
      pmx_error ("thread count %d is less than 1", threads);
      return NULL;
    }
  pmx_pool *p = calloc (1, sizeof *p);
  if (!p || !(p->tid = calloc ((size_t) threads, sizeof *p->tid)))
    {
      free (p);
      pmx_error ("out of memory");
      return NULL;
    }
  pthread_mutex_init (&p->lock, NULL);
  pthread_cond_init (&p->start, NULL);
  pthread_cond_init (&p->done, NULL);
  atomic_init (&p->generation, 0);
  atomic_init (&p->busy, 0);
  atomic_init (&p->quit, 0);
  atomic_init (&p->next, 0);
  p->size = 1;
  p->spin = threads <= usable_cpus () ? SPIN : 0;
  for (int i = 1; i < threads; i++)
    {
      struct worker_arg *wa = malloc (sizeof *wa);
      int err = ENOMEM;
      if (wa)
        {
          *wa = (struct worker_arg) { p, i };
          err = pthread_create (&p->tid[i - 1], NULL, worker_main, wa);
        }
      if (err)
        {
          free (wa);
          pmx_pool_free (p);
          pmx_error_errno (err, "cannot start thread %d", i);
          return NULL;
        }
      p->size++;
    }
  return p;
}

void
pmx_pool_free (pmx_pool *p)
{
  if (!p)
    return;
  pthread_mutex_lock (&p->lock);
  atomic_store (&p->quit, 1);
  pthread_cond_broadcast (&p->start);
  pthread_mutex_unlock (&p->lock);
  for (int i = 0; i < p->size - 1; i++)
    pthread_join (p->tid[i], NULL);
  pthread_mutex_destroy (&p->lock);
  pthread_cond_destroy (&p->start);
  pthread_cond_destroy (&p->done);
  free (p->tid);
  free (p);
}

int
pmx_pool_size (const pmx_pool *p)
{
  return p->size;
}

void
pmx_pool_run (pmx_pool *p, pmx_task_fn fn, void *arg, int ntasks)
{
  if (ntasks <= 0)
    return;
  /* No pool, or not worth waking anyone for a single task.  */
  if (!p || p->size == 1 || ntasks == 1)
    {
      for (int t = 0; t < ntasks; t++)
        fn (arg, t, 0);
      return;
    }
  /* The job's fields, then the generation that publishes them (release):
     a worker reads them after seeing it (acquire).  Sleepers are woken
     under the lock, so none can miss the new generation.  */
  p->fn = fn;
  p->arg = arg;
  p->ntasks = ntasks;
  atomic_store_explicit (&p->next, 0, memory_order_relaxed);
  atomic_store_explicit (&p->busy, p->size - 1, memory_order_relaxed);
  atomic_fetch_add_explicit (&p->generation, 1, memory_order_release);
  pthread_mutex_lock (&p->lock);
  if (p->sleepers)
    pthread_cond_broadcast (&p->start);
  pthread_mutex_unlock (&p->lock);
  work (p, 0);
  for (int i = 0; i < p->spin && atomic_load (&p->busy) > 0; i++)
    cpu_relax ();
  if (atomic_load (&p->busy) > 0)
    {
      pthread_mutex_lock (&p->lock);
      p->waiting = 1;
      while (atomic_load (&p->busy) > 0)
        pthread_cond_wait (&p->done, &p->lock);
      p->waiting = 0;
      pthread_mutex_unlock (&p->lock);
    }
}

int
pmx_online_cpus (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int) (n < 256 ? n : 256) : 1;
}
