/* train-prune.c -- one step of CoFi pruning (see train-prune.h).  */

#include <config.h>
#include "train-prune.h"
#include "error.h"
#include "train-io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pmx_pruner *
pmx_pruner_new (pmx_tmodel *teacher, pmx_tmodel *student, pmx_l0 *l0,
                uint64_t seed)
{
  if (!student->cfg.layer_transformation || !student->open)
    return pmx_error ("the student needs a layer_transformation and open"
                      " activations"), NULL;
  if (teacher->cfg.num_labels != student->cfg.num_labels
      || teacher->cfg.mux_n != student->cfg.mux_n || student->cfg.num_labels < 1)
    return pmx_error ("teacher and student differ in labels or N"), NULL;
  pmx_pruner *p = calloc (1, sizeof *p);
  if (!p)
    return pmx_error ("out of memory"), NULL;
  p->teacher = teacher;
  p->student = student;
  p->l0 = l0;
  p->seed = seed;
  p->temperature = 2;
  p->alpha_ce = 0.1f;
  p->alpha_layer = 0.9f;
  p->clip = 1;
  p->reg_lr = 0.01f;
  p->nt = pmx_distill_teacher_layers (teacher->cfg.layers, p->tl);
  p->opt = pmx_adamw_new (student);
  if (p->opt)
    p->opt->freeze_embeddings = 1;      /* §6.7 */
  if (l0)
    {
      p->l0_m = calloc (l0->n ? l0->n : 1, sizeof (float));
      p->l0_v = calloc (l0->n ? l0->n : 1, sizeof (float));
      p->z = pmx_l0_z_new (l0);
      p->dz = pmx_l0_z_new (l0);
    }
  if (!p->opt || (l0 && (!p->l0_m || !p->l0_v || !p->z || !p->dz)))
    {
      pmx_pruner_free (p);
      return pmx_error ("out of memory"), NULL;
    }
  return p;
}

void
pmx_pruner_free (pmx_pruner *p)
{
  if (!p)
    return;
  pmx_adamw_free (p->opt);
  free (p->l0_m);
  free (p->l0_v);
  pmx_cofi_z_free (p->z);
  pmx_cofi_z_free (p->dz);
  free (p->scratch);
  free (p);
}

int
pmx_prune_distil (pmx_pruner *p, const pmx_cofi_z *z, double *pred,
                  double *layer)
{
  pmx_tacts *ta = pmx_tmodel_acts (p->teacher);
  pmx_tacts *sa = pmx_tmodel_acts (p->student);
  pmx_tmodel *s = p->student;
  int L = s->cfg.layers;
  *pred = pmx_distill_pred (sa->logits, ta->logits, sa->B, sa->C,
                            p->temperature, sa->dlogits, p->alpha_ce);
  *layer = 0;
  if (p->alpha_layer == 0 || p->nt == 0 || L == 0)
    return 0;
  size_t R = (size_t) sa->G * sa->T;
  size_t need = (L + 1) * R * ta->H;
  if (need > p->scratch_n)
    {
      free (p->scratch);
      p->scratch = malloc (need * sizeof (float));
      p->scratch_n = p->scratch ? need : 0;
      if (!p->scratch)
        return pmx_error ("out of memory");
    }
  int exists[PMX_TRAIN_MAX_LAYERS];
  const float *tp[PMX_DISTILL_MAX_LAYERS];
  for (int j = 0; j < L; j++)
    exists[j] = !z || z->head_layer[j] != 0;
  for (int k = 0; k < p->nt; k++)
    tp[k] = ta->hidden[p->tl[k] + 1];
  *layer = pmx_distill_layers (s->par, sa->hidden + 1, L, tp, p->nt,
                               s->w.lt_w, s->w.lt_b, z ? exists : NULL, R, sa->H, ta->H,
                               p->scratch, NULL, sa->dhidden + 1, s->g.lt_w,
                               s->g.lt_b, p->alpha_layer);
  return 0;
}

int
pmx_prune_grads (pmx_pruner *p, const pmx_tbatch *b, int64_t step,
                 double target, const float *noise, pmx_prune_stats *st)
{
  pmx_l0 *l0 = p->l0;
  pmx_tmodel *m = p->student;
  memset (st, 0, sizeof *st);
  if (isnan (pmx_tmodel_forward (p->teacher, b, 0, 0, 0)))
    return pmx_error_prefix ("teacher");
  if (noise)
    pmx_l0_sample_noise (l0, noise, p->z);
  else
    pmx_l0_sample (l0, p->z);
  pmx_tmodel_zero_grad (m);
  pmx_l0_zero_grad (l0);
  if (isnan (pmx_tmodel_forward_z (m, b, p->z, 1, p->seed, (uint64_t) step)))
    return pmx_error_prefix ("student");
  if (pmx_prune_distil (p, p->z, &st->pred, &st->layer) < 0)
    return -1;
  for (size_t i = 0; i < l0->n; i++)
    *pmx_l0_z_at (l0, p->dz, i) = 0;
  if (pmx_tmodel_backward_z (m, p->dz) < 0)
    return pmx_error_prefix ("student");
  pmx_l0_backward (l0, p->dz, 1.0);
  st->target = target;
  st->lagrangian = pmx_l0_lagrangian (l0, target, 1.0, &st->expected_sparsity);
  st->loss = p->alpha_ce * st->pred + p->alpha_layer * st->layer
    + st->lagrangian;
  return 0;
}

int
pmx_finetune_grads (pmx_pruner *p, const pmx_tbatch *b, int64_t step,
                    pmx_prune_stats *st)
{
  memset (st, 0, sizeof *st);
  if (isnan (pmx_tmodel_forward (p->teacher, b, 0, 0, 0)))
    return pmx_error_prefix ("teacher");
  pmx_tmodel_zero_grad (p->student);
  if (isnan (pmx_tmodel_forward (p->student, b, 1, p->seed, (uint64_t) step)))
    return pmx_error_prefix ("student");
  if (pmx_prune_distil (p, NULL, &st->pred, &st->layer) < 0
      || pmx_tmodel_backward (p->student) < 0)
    return -1;
  st->loss = p->alpha_ce * st->pred + p->alpha_layer * st->layer;
  return 0;
}

void
pmx_prune_update (pmx_pruner *p, int64_t step, float lr, pmx_prune_stats *st)
{
  pmx_l0 *l0 = p->l0;
  pmx_adamw *o = p->opt;
  st->grad_norm = pmx_adamw_clip_step (o, p->student, lr, p->clip);
  if (!l0)
    return;
  pmx_adam_update (l0->loga, l0->grad, p->l0_m, p->l0_v, l0->n, step + 1,
                   p->reg_lr, o->beta1, o->beta2, o->eps);
  /* Gradient ascent on the multipliers: AdamW with -reg_lr (§6.5).  */
  float lam[2] = { (float) l0->lambda[0], (float) l0->lambda[1] };
  float g[2] = { (float) l0->lambda_grad[0], (float) l0->lambda_grad[1] };
  pmx_adam_update (lam, g, p->lam_m, p->lam_v, 2, step + 1, -p->reg_lr,
                   o->beta1, o->beta2, o->eps);
  l0->lambda[0] = lam[0];
  l0->lambda[1] = lam[1];
  pmx_l0_constrain (l0);
  pmx_l0_zero_grad (l0);
}

/* ---- State ---------------------------------------------------------------- */

/* The tensors of the state beside the student's: name, type, length.  */
enum { S_LOGA, S_M, S_V, S_LAMBDA, S_LAM_ADAM, S_COUNT };
static const char *const state_name[S_COUNT] =
  { "l0_loga", "l0_adam_m", "l0_adam_v", "lambda", "lambda_adam" };

int
pmx_pruner_save (const pmx_pruner *p, const char *path, pmx_meta *meta)
{
  const pmx_l0 *l0 = p->l0;
  pmx_record st;
  pmx_record_init (&st);
  int rc = -1;
  for (int i = 0; i < S_COUNT; i++)
    {
      int64_t n = i < S_LAMBDA ? (int64_t) l0->n : i == S_LAMBDA ? 2 : 4;
      pmx_tensor *t = pmx_record_add (&st, state_name[i],
                                      i == S_LAMBDA ? PMX_F64 : PMX_F32, 1,
                                      &n);
      if (!t)
        goto out;
      float *f = t->data;
      if (i == S_LOGA || i == S_M || i == S_V)
        memcpy (f, i == S_LOGA ? l0->loga : i == S_M ? p->l0_m : p->l0_v,
                l0->n * sizeof (float));
      else if (i == S_LAMBDA)
        memcpy (t->data, l0->lambda, 2 * sizeof (double));
      else
        {
          f[0] = p->lam_m[0]; f[1] = p->lam_m[1];
          f[2] = p->lam_v[0]; f[3] = p->lam_v[1];
        }
    }
  if (pmx_meta_setf (meta, "l0_draws", "%llu",
                     (unsigned long long) l0->draws) < 0)
    goto out;
  rc = pmx_train_state_save_x (path, meta, p->student, p->opt, &st);
out:
  pmx_record_free (&st);
  return rc;
}

int
pmx_pruner_load (pmx_pruner *p, const char *path, pmx_meta *meta)
{
  pmx_l0 *l0 = p->l0;
  pmx_record st;
  pmx_record_init (&st);
  int rc = pmx_train_state_load_x (path, meta, p->student, p->opt, &st);
  long long draws = 0;
  if (rc == 0
      && pmx_meta_get_int (meta, "l0_draws", 0, 1LL << 62, &draws) != 0)
    rc = pmx_error ("%s: no l0_draws: not the state of a pruning", path);
  const pmx_tensor *t[S_COUNT];
  for (int i = 0; i < S_COUNT && rc == 0; i++)
    {
      int64_t n = i < S_LAMBDA ? (int64_t) l0->n : i == S_LAMBDA ? 2 : 4;
      t[i] = pmx_record_expect (&st, state_name[i],
                                i == S_LAMBDA ? PMX_F64 : PMX_F32, 1);
      if (!t[i] || t[i]->shape[0] != n)
        rc = pmx_error ("%s: not the state of this pruning (%s)", path,
                        state_name[i]);
    }
  if (rc == 0)
    {
      memcpy (l0->loga, t[S_LOGA]->data, l0->n * sizeof (float));
      memcpy (p->l0_m, t[S_M]->data, l0->n * sizeof (float));
      memcpy (p->l0_v, t[S_V]->data, l0->n * sizeof (float));
      memcpy (l0->lambda, t[S_LAMBDA]->data, 2 * sizeof (double));
      const float *f = t[S_LAM_ADAM]->data;
      p->lam_m[0] = f[0]; p->lam_m[1] = f[1];
      p->lam_v[0] = f[2]; p->lam_v[1] = f[3];
      l0->draws = (uint64_t) draws;
    }
  pmx_record_free (&st);
  return rc;
}
