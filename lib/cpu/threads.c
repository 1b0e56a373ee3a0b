/* threads.c -- the encoder's thread pool (threads.h).

   Workers sleep on a condition variable between jobs: a job here is a whole
   GEMM or attention phase (milliseconds), so a wake-up of some microseconds
   is negligible, and sleeping workers leave the cores to OpenBLAS calls and
   to other processes.  */

#include <config.h>
#include "threads.h"
#include "error.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct pmx_pool
{
  int size;
  pthread_t *tid;               /* size - 1 workers */
  pthread_mutex_t lock;
  pthread_cond_t start, done;
  unsigned long generation;     /* bumped for every job */
  int busy;                     /* workers still in the current job */
  int quit;
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

static void *
worker_main (void *varg)
{
  struct worker_arg *wa = varg;
  pmx_pool *p = wa->pool;
  int index = wa->index;
  free (wa);
  unsigned long seen = 0;
  pthread_mutex_lock (&p->lock);
  for (;;)
    {
      while (!p->quit && p->generation == seen)
        pthread_cond_wait (&p->start, &p->lock);
      if (p->quit)
        break;
      seen = p->generation;
      pthread_mutex_unlock (&p->lock);
      work (p, index);
      pthread_mutex_lock (&p->lock);
      if (--p->busy == 0)
        pthread_cond_signal (&p->done);
    }
  pthread_mutex_unlock (&p->lock);
  return NULL;
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
  atomic_init (&p->next, 0);
  p->size = 1;
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
  p->quit = 1;
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
  pthread_mutex_lock (&p->lock);
  p->fn = fn;
  p->arg = arg;
  p->ntasks = ntasks;
  atomic_store (&p->next, 0);
  p->busy = p->size - 1;
  p->generation++;
  pthread_cond_broadcast (&p->start);
  pthread_mutex_unlock (&p->lock);
  work (p, 0);
  pthread_mutex_lock (&p->lock);
  while (p->busy > 0)
    pthread_cond_wait (&p->done, &p->lock);
  pthread_mutex_unlock (&p->lock);
}

int
pmx_online_cpus (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int) (n < 256 ? n : 256) : 1;
}
