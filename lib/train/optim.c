/* optim.c -- AdamW, schedules and clipping (see optim.h).  */

#include <config.h>
#include "optim.h"
#include "error.h"
#include "kernels.h"
#include "par.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pmx_adamw *
pmx_adamw_new (const pmx_tmodel *model)
{
  pmx_adamw *o = calloc (1, sizeof *o);
  if (o)
    {
      o->n = model->total;
      o->m = calloc (o->n ? o->n : 1, sizeof (float));
      o->v = calloc (o->n ? o->n : 1, sizeof (float));
    }
  if (!o || !o->m || !o->v)
    {
      pmx_adamw_free (o);
      pmx_error ("optimizer: out of memory");
      return NULL;
    }
  o->beta1 = 0.9f;
  o->beta2 = 0.999f;
  o->eps = 1e-8f;
  return o;
}

void
pmx_adamw_free (pmx_adamw *o)
{
  if (!o)
    return;
  free (o->m);
  free (o->v);
  free (o);
}

int
pmx_adamw_trains (const pmx_adamw *o, const pmx_tparam *p)
{
  return !p->frozen && !(o->freeze_embeddings && p->embedding);
}

/* Adam's bias corrections at step T, as torch computes them in float: the
   step size LR / (1 - beta1^t) and sqrt (1 - beta2^t).  */
static void
bias_corrections (float lr, float beta1, float beta2, int64_t t, float *step_size,
                  float *bc2_sqrt)
{
  *step_size = lr / (1.0f - powf (beta1, (float) t));
  *bc2_sqrt = sqrtf (1.0f - powf (beta2, (float) t));
}

/* The part [*A, *B) of parameter P that lies in the flat range I0..I1:
   nonzero if there is one.  The optimizer's and clipping's passes go over
   the flat parameters in ranges; a parameter may straddle them.  */
static int
slice (const pmx_tparam *p, size_t i0, size_t i1, size_t *a, size_t *b)
{
  *a = p->offset > i0 ? p->offset : i0;
  *b = p->offset + p->size < i1 ? p->offset + p->size : i1;
  return *a < *b;
}

/* The same for a parameter the optimizer trains (else 0).  */
static int
trained_slice (const pmx_adamw *o, const pmx_tparam *p, size_t i0, size_t i1,
               size_t *a, size_t *b)
{
  return slice (p, i0, i1, a, b) && pmx_adamw_trains (o, p);
}

/* The update of the flat range I0..I1 of every parameter's values (a
   parameter may straddle ranges: each element's update is its own, so the
   ranges, and the threads that take them, change no bit).  */
typedef struct adamw_job
{
  pmx_adamw *o;
  pmx_tmodel *model;
  float lr, step_size, bc2_sqrt;
  float gscale;                 /* the gradients' clipping factor */
  int zero;                     /* leave every gradient 0 */
} adamw_job;

static void
adamw_range (void *arg, size_t i0, size_t i1, int thread)
{
  const adamw_job *j = arg;
  pmx_adamw *o = j->o;
  pmx_tmodel *model = j->model;
  (void) thread;
  for (int k = 0; k < model->nparams; k++)
    {
      const pmx_tparam *p = &model->param[k];
      size_t a, b;
      if (!slice (p, i0, i1, &a, &b))
        continue;
      if (!pmx_adamw_trains (o, p))
        {
          if (j->zero)
            memset (model->grads + a, 0, (b - a) * sizeof (float));
          continue;
        }
      float decay = p->decay ? 1.0f - j->lr * o->weight_decay : 1.0f;
      pmx_adamw_update (model->params + a, model->grads + a, o->m + a, o->v + a, b - a,
                        decay, o->beta1, o->beta2, j->step_size, j->bc2_sqrt, o->eps,
                        j->gscale, j->zero);
    }
}

/* Elements of a task of the optimizer's and clipping's passes.  */
enum { RANGE = 1 << 16 };

/* One step over every parameter, the gradients times GSCALE, zeroed
   after with ZERO.  */
static void
adamw_pass (pmx_adamw *o, pmx_tmodel *model, float lr, float gscale, int zero)
{
  o->t++;
  /* As torch.optim.AdamW (single-tensor path): decay first, then the
     bias-corrected Adam update, in float.  */
  adamw_job j = { o, model, lr, 0, 0, gscale, zero };
  bias_corrections (lr, o->beta1, o->beta2, o->t, &j.step_size, &j.bc2_sqrt);
  pmx_par_for (model->par, model->total, RANGE, adamw_range, &j);
}

void
pmx_adamw_step (pmx_adamw *o, pmx_tmodel *model, float lr)
{
  adamw_pass (o, model, lr, 1.0f, 0);
}

void
pmx_adam_update (float *x, const float *g, float *m, float *v, size_t n,
                 int64_t t, float lr, float beta1, float beta2, float eps)
{
  float step_size, bc2_sqrt;
  bias_corrections (lr, beta1, beta2, t, &step_size, &bc2_sqrt);
  pmx_adamw_update (x, (float *) g, m, v, n, 1.0f, beta1, beta2, step_size, bc2_sqrt,
                    eps, 1.0f, 0);      /* G is not written */
}

/* Each trained parameter's sum of squares (one pmx_sum_squares a
   parameter, as on one thread), then the gradients scaled by COEF.  */
typedef struct clip_job
{
  const pmx_adamw *o;
  pmx_tmodel *model;
  double *ss;
  float coef;
} clip_job;

static void
sum_squares_task (void *arg, int k, int thread)
{
  const clip_job *j = arg;
  const pmx_tparam *p = &j->model->param[k];
  (void) thread;
  j->ss[k] = pmx_adamw_trains (j->o, p)
    ? pmx_sum_squares (j->model->grads + p->offset, p->size) : 0;
}

static void
scale_range (void *arg, size_t i0, size_t i1, int thread)
{
  const clip_job *j = arg;
  pmx_tmodel *model = j->model;
  (void) thread;
  for (int k = 0; k < model->nparams; k++)
    {
      size_t a, b;
      if (!trained_slice (j->o, &model->param[k], i0, i1, &a, &b))
        continue;
      pmx_vscale (model->grads + a, j->coef, b - a);
    }
}

/* The global L2 norm of the trained parameters' gradients.  */
static double
grad_norm (const pmx_adamw *o, pmx_tmodel *model)
{
  double ss = 0;
  clip_job j = { o, model, calloc ((size_t) model->nparams + 1, sizeof (double)), 0 };
  if (j.ss)
    {
      pmx_par_tasks (model->par, model->nparams, sum_squares_task, &j);
      for (int k = 0; k < model->nparams; k++)
        ss += j.ss[k];
      free (j.ss);
    }
  else                          /* no memory for the parts: on this thread */
    for (int k = 0; k < model->nparams; k++)
      {
        const pmx_tparam *p = &model->param[k];
        if (pmx_adamw_trains (o, p))
          ss += pmx_sum_squares (model->grads + p->offset, p->size);
      }
  return sqrt (ss);
}

/* The factor clipping scales the gradients by, 1 for none.  */
static float
clip_coef (double norm, float max_norm)
{
  return max_norm > 0 && norm > max_norm ? (float) (max_norm / (norm + 1e-6)) : 1.0f;
}

double
pmx_clip_grad_norm (const pmx_adamw *o, pmx_tmodel *model, float max_norm)
{
  double norm = grad_norm (o, model);
  float coef = clip_coef (norm, max_norm);
  if (coef != 1.0f)
    {
      clip_job j = { o, model, NULL, coef };
      pmx_par_for (model->par, model->total, RANGE, scale_range, &j);
    }
  return norm;
}

double
pmx_adamw_clip_step (pmx_adamw *o, pmx_tmodel *model, float lr, float max_norm)
{
  double norm = grad_norm (o, model);
  adamw_pass (o, model, lr, clip_coef (norm, max_norm), 1);
  pmx_tmodel_grads_zeroed (model);
  return norm;
}

float
pmx_lr_at (float base, int64_t step, int64_t warmup, int64_t total, int decay)
{
  if (step < warmup)
    return base * (float) step / (float) warmup;
  if (!decay)
    return base;
  if (step >= total)
    return 0.0f;
  return base * (float) (total - step) / (float) (total - warmup > 0
                                                  ? total - warmup : 1);
}
