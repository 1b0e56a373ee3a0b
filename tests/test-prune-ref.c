/* test-prune-ref.c -- whole CoFi pruning steps (lib/train/train-prune.h) with
   fixed noise, written out for tests/ref-prune.py to recompute with
   PyTorch autograd.

   Usage: test-prune-ref VARIANT DIR
     VARIANT  mux    N = 2 MUX-BERT of 4 layers (teacher layers 0 and 3)
              plain  N = 1 BERT of 4 layers with a padding mask
   The student starts as the teacher with an identity layer_transformation;
   the log alphas are drawn in [-2, 3] so that the samples have zeros,
   soft values and ones; the multipliers start at (0.3, 0.5); dropout 0.
   Writes DIR/teacher.pmxs, DIR/student.pmxs (parameters), DIR/data.pmxs
   (the batch and the settings in META), DIR/l0.pmxs (initial log alphas
   and the noise of every step), DIR/grads.pmxs (the first step's
   gradients of every student parameter, every log alpha and the
   multipliers) and DIR/losses.pmxs (every step's losses).  */

#include <config.h>
#include "error.h"
#include "l0.h"
#include "stream.h"
#include "train-model.h"
#include "train-ops.h"
#include "train-prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train-fixture.h"

enum { STEPS = 4 };

static uint64_t rng = 2024;

static double
uniform (void)                  /* in (0, 1) */
{
  rng = pmx_mix64 (rng);
  return ((double) (rng >> 11) + 0.5) * 0x1p-53;
}

int
main (int argc, char **argv)
{
  check_program = "test-prune-ref";
  if (argc != 3)
    {
      fprintf (stderr, "usage: test-prune-ref mux|plain DIR\n");
      return 2;
    }
  const char *variant = argv[1], *dir = argv[2];
  pmx_train_config c;
  memset (&c, 0, sizeof c);
  c.vocab = 40; c.hidden = 12; c.layers = 4; c.head_dim = 3;
  c.max_pos = 10; c.type_vocab = 2; c.ln_eps = 1e-12f;
  for (int l = 0; l < c.layers; l++)
    {
      c.heads[l] = 4;
      c.ffn[l] = 16;
    }
  int B, T = 8;
  if (!strcmp (variant, "mux"))
    {
      c.mux_n = 2; c.muxed = 1; c.demux_hidden = 12; c.num_labels = 3;
      c.attend_padding = 1;
      B = 8;
    }
  else if (!strcmp (variant, "plain"))
    {
      c.mux_n = 1; c.num_labels = 3;
      B = 6;
    }
  else
    {
      fprintf (stderr, "test-prune-ref: unknown variant '%s'\n", variant);
      return 2;
    }
  pmx_tmodel *teacher = pmx_tmodel_new (&c);
  if (!teacher)
    check_fatal ("teacher");
  pmx_tmodel_init (teacher, 77);
  c.layer_transformation = 1;
  pmx_tmodel *student = pmx_tmodel_new (&c);
  if (!student)
    check_fatal ("student");
  pmx_tmodel_init (student, 1);
  pmx_tmodel_copy (student, teacher);
  student->open = 1;

  pmx_cofi_z *shape = pmx_cofi_z_new (c.layers, c.hidden, c.heads, c.ffn);
  double head_weight = pmx_l0_head_weight (c.hidden, c.heads[0]);
  double prunable = pmx_cofi_prunable_size (c.layers, c.hidden, c.heads[0],
                                            c.ffn[0]);
  pmx_l0 *l0 = shape ? pmx_l0_new (shape, head_weight, prunable, 5) : NULL;
  if (!l0)
    check_fatal ("l0");
  for (size_t i = 0; i < l0->n; i++)
    l0->loga[i] = (float) (-2 + 5 * uniform ());
  l0->lambda[0] = 0.3;
  l0->lambda[1] = 0.5;
  pmx_pruner *p = pmx_pruner_new (teacher, student, l0, 0);
  if (!p)
    check_fatal ("pruner");
  p->reg_lr = 0.05f;            /* larger than CoFi's, to move in 4 steps */
  const float lr = 2e-3f;
  const double sparsity = 0.6;
  const int warmup = 2;

  /* The batch: random tokens, PAD after each row's length.  */
  int32_t *ids = calloc (B * T, 4), *types = calloc (B * T, 4);
  int32_t *lengths = calloc (B, 4);
  uint64_t s = 99;
  for (int r = 0; r < B; r++)
    {
      lengths[r] = 3 + (int) ((s = pmx_mix64 (s)) % (T - 2));
      for (int t = 0; t < T; t++)
        {
          ids[r * T + t] = t < lengths[r]
            ? 1 + (int) ((s = pmx_mix64 (s)) % (c.vocab - 1)) : 0;
          types[r * T + t] = c.muxed ? 0 : t >= lengths[r] / 2;
        }
    }
  pmx_tbatch b = { B, T, ids, types, lengths, NULL, NULL, NULL, 0, 0, 0 };

  pmx_meta meta;
  pmx_meta_init (&meta);
  pmx_meta_setf (&meta, "mux_n", "%d", c.mux_n);
  pmx_meta_setf (&meta, "muxed", "%d", c.muxed);
  pmx_meta_setf (&meta, "layers", "%d", c.layers);
  pmx_meta_setf (&meta, "head_dim", "%d", c.head_dim);
  pmx_meta_setf (&meta, "task_weight", "0");
  pmx_meta_setf (&meta, "retrieval_weight", "0");
  pmx_meta_setf (&meta, "alpha_ce", "%.9g", p->alpha_ce);
  pmx_meta_setf (&meta, "alpha_layer", "%.9g", p->alpha_layer);
  pmx_meta_setf (&meta, "temperature", "%.9g", p->temperature);
  pmx_meta_setf (&meta, "clip", "%.9g", p->clip);
  pmx_meta_setf (&meta, "reg_lr", "%.9g", p->reg_lr);
  pmx_meta_setf (&meta, "lr", "%.9g", lr);
  pmx_meta_setf (&meta, "steps", "%d", STEPS);
  pmx_meta_setf (&meta, "sparsity", "%.9g", sparsity);
  pmx_meta_setf (&meta, "warmup", "%d", warmup);
  pmx_meta_setf (&meta, "head_weight", "%.17g", head_weight);
  pmx_meta_setf (&meta, "prunable", "%.17g", prunable);
  pmx_meta_setf (&meta, "lambda1", "%.17g", l0->lambda[0]);
  pmx_meta_setf (&meta, "lambda2", "%.17g", l0->lambda[1]);
  char buf[1024];
  int o = 0;
  for (int l = 0; l < c.layers; l++)
    o += snprintf (buf + o, sizeof buf - o, "%s%d/%d", l ? "," : "",
                   c.heads[l], c.ffn[l]);
  pmx_meta_set (&meta, "shape", buf);

  pmx_record rec;
  pmx_record_init (&rec);
  dump_params (&rec, teacher, teacher->params);
  write_stream (dir, "teacher.pmxs", NULL, &rec);
  pmx_record_reset (&rec);
  dump_params (&rec, student, student->params);
  write_stream (dir, "student.pmxs", NULL, &rec);
  pmx_record_reset (&rec);
  memcpy (add (&rec, "ids", PMX_I32, 2, B, T), ids, B * T * 4);
  memcpy (add (&rec, "type_ids", PMX_I32, 2, B, T), types, B * T * 4);
  memcpy (add (&rec, "lengths", PMX_I32, 1, B, 0), lengths, B * 4);
  int32_t *lab = add (&rec, "label", PMX_I32, 1, B, 0);
  for (int r = 0; r < B; r++)
    lab[r] = -1;
  write_stream (dir, "data.pmxs", &meta, &rec);

  pmx_record_reset (&rec);
  memcpy (add (&rec, "loga", PMX_F32, 1, l0->n, 0), l0->loga,
          l0->n * sizeof (float));
  float *noise = add (&rec, "noise", PMX_F32, 2, STEPS, l0->n);
  for (size_t i = 0; i < STEPS * l0->n; i++)
    noise[i] = (float) uniform ();
  write_stream (dir, "l0.pmxs", NULL, &rec);

  pmx_record out;
  pmx_record_init (&out);
  double *losses = add (&out, "losses", PMX_F64, 2, STEPS, 6);
  for (int step = 0; step < STEPS; step++)
    {
      pmx_prune_stats st;
      double target = pmx_l0_target (sparsity, 0, step, warmup);
      if (pmx_prune_grads (p, &b, step, target, noise + step * l0->n, &st) < 0)
        check_fatal ("step");
      if (step == 0)
        {
          pmx_record g;
          pmx_record_init (&g);
          dump_params (&g, student, student->grads);
          memcpy (add (&g, "l0_grad", PMX_F32, 1, l0->n, 0), l0->grad,
                  l0->n * sizeof (float));
          memcpy (add (&g, "lambda_grad", PMX_F64, 1, 2, 0), l0->lambda_grad,
                  2 * sizeof (double));
          write_stream (dir, "grads.pmxs", NULL, &g);
          pmx_record_free (&g);
        }
      pmx_prune_update (p, step, pmx_lr_at (lr, step, 0, STEPS, 1), &st);
      double *row = losses + step * 6;
      row[0] = st.loss;
      row[1] = st.pred;
      row[2] = st.layer;
      row[3] = st.lagrangian;
      row[4] = st.expected_sparsity;
      row[5] = st.grad_norm;
      printf ("%s step %d: loss %.6f pred %.6f layer %.6f lagrangian %.6f"
              " expected sparsity %.4f\n", variant, step, st.loss, st.pred,
              st.layer, st.lagrangian, st.expected_sparsity);
    }
  memcpy (add (&out, "loga_end", PMX_F32, 1, l0->n, 0), l0->loga,
          l0->n * sizeof (float));
  memcpy (add (&out, "lambda_end", PMX_F64, 1, 2, 0), l0->lambda,
          2 * sizeof (double));
  write_stream (dir, "losses.pmxs", NULL, &out);

  pmx_record_free (&out);
  pmx_record_free (&rec);
  pmx_meta_free (&meta);
  pmx_pruner_free (p);
  pmx_l0_free (l0);
  pmx_cofi_z_free (shape);
  pmx_tmodel_free (student);
  pmx_tmodel_free (teacher);
  free (ids); free (types); free (lengths);
  return 0;
}
