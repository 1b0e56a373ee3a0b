/* train-prune.c -- one step of CoFi pruning (see train-prune.h).  */

#include <config.h>
#include "train-prune.h"
#include "error.h"

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

void
pmx_prune_hold_hidden (pmx_l0 *l0, pmx_cofi_z *z)
{
  for (int j = 0; j < l0->hidden; j++)
    {
      l0->loga[l0->off_hidden + j] = 10;
      if (z)
        z->hidden_z[j] = 1;
    }
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
  *layer = pmx_distill_layers (sa->hidden + 1, L, tp, p->nt, s->w.lt_w,
                               s->w.lt_b, z ? exists : NULL, R, sa->H, ta->H,
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
  if (p->keep_hidden)
    pmx_prune_hold_hidden (l0, p->z);
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
  if (p->keep_hidden)
    memset (p->dz->hidden_z, 0, l0->hidden * sizeof (float));
  pmx_l0_backward (l0, p->dz, 1.0);
  st->target = target;
  st->lagrangian = pmx_l0_lagrangian (l0, target, 1.0, &st->expected_sparsity);
  if (p->keep_hidden)
    memset (l0->grad + l0->off_hidden, 0, l0->hidden * sizeof (float));
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
  st->grad_norm = pmx_clip_grad_norm (o, p->student, p->clip);
  pmx_adamw_step (o, p->student, lr);
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
  if (p->keep_hidden)
    pmx_prune_hold_hidden (l0, NULL);
  pmx_l0_zero_grad (l0);
}
