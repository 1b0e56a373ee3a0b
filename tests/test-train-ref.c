/* test-train-ref.c -- whole-model gradients and AdamW steps, written out
   for tests/ref-train.py to recompute with PyTorch autograd.

   Usage: test-train-ref VARIANT DIR
     VARIANT  mux    N = 2 MUX-BERT, task + retrieval losses, uneven layers
              mlm    N = 2, MLM (masked positions of every instance) +
                     retrieval
              mux3   N = 3, retrieval only, frozen embeddings
              plain  N = 1 BERT with padding mask, type ids and CoFi-pruned
                     sublayers (layer 0 without FFN, layer 1 without
                     attention), task loss
              zmux   N = 2, task loss, under CoFi masks (soft values, zeros,
                     an attention sublayer switched off), plus gradients
                     put on every hidden state and the logits from outside
              zplain N = 1 with padding mask, likewise (an FFN off)
   Writes DIR/weights.pmxs (initial parameters), DIR/data.pmxs (the batch
   and the training settings), DIR/grads.pmxs (loss and gradients of the
   first forward/backward) and DIR/losses.pmxs (the losses of 10 AdamW
   steps with warm-up, decay, weight decay and clipping); the z variants
   also DIR/z.tsv (the masks) and DIR/dz.tsv (the loss's gradient with
   respect to them), and the outside gradients in data.pmxs.  Every
   variant also checks head_rows_only against the whole last layer.  */

#include <config.h>
#include "error.h"
#include "optim.h"
#include "stream.h"
#include "train-model.h"
#include "train-ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train-fixture.h"


/* Gradient accumulation: two micro-batches of 3 rows, each with loss
   weight 1/2, must give the gradient of the whole batch of 6 (all labels
   counted, so the means agree).  Returns the number of failures.  */
static int
check_accumulation (pmx_tmodel *m, const int32_t *ids, const int32_t *types,
                    const int32_t *lengths, int T, int C)
{
  int32_t labels[6] = { 0, 1 % C, 2 % C, 1 % C, 0, 2 % C };
  pmx_tbatch full = { 6, T, ids, types, lengths, labels, NULL, NULL, 1, 0, 0 };
  pmx_tmodel_zero_grad (m);
  if (isnan (pmx_tmodel_forward (m, &full, 0, 0, 0)) || pmx_tmodel_backward (m) < 0)
    check_fatal ("accumulation: full batch");
  float *g = malloc (m->total * sizeof *g);
  memcpy (g, m->grads, m->total * sizeof *g);
  pmx_tmodel_zero_grad (m);
  for (int k = 0; k < 2; k++)
    {
      pmx_tbatch half = { 3, T, ids + 3 * k * T, types + 3 * k * T,
                          lengths + 3 * k, labels + 3 * k, NULL, NULL, 0.5f,
                          0, 0 };
      if (isnan (pmx_tmodel_forward (m, &half, 0, 0, k))
          || pmx_tmodel_backward (m) < 0)
        check_fatal ("accumulation: micro-batch");
    }
  double worst = 0, scale = 0;
  for (size_t i = 0; i < m->total; i++)
    {
      double d = fabs (g[i] - m->grads[i]);
      worst = d > worst ? d : worst;
      scale = fabs (g[i]) > scale ? fabs (g[i]) : scale;
    }
  free (g);
  int bad = !(worst <= 1e-6 + 1e-5 * scale);
  printf ("%s accumulation: max |diff| %.3g (max |grad| %.3g)\n",
          bad ? "FAIL" : "ok  ", worst, scale);
  return bad;
}

/* head_rows_only: the same loss, logits and gradients as the whole last
   layer, on a task-only batch with dropout (so that its masks are checked
   too), in a model of M's shape and weights that is not open.  Returns
   the number of failures.  */
static int
check_head_rows (const pmx_tmodel *m, const int32_t *ids, const int32_t *types,
                 const int32_t *lengths, const int32_t *labels, int B, int T)
{
  pmx_train_config c = m->cfg;
  c.dropout = 0.1f;
  pmx_tmodel *h = pmx_tmodel_new (&c);
  if (!h || h->total != m->total)
    check_fatal ("head rows: model");
  memcpy (h->params, m->params, m->total * sizeof (float));
  pmx_tbatch b = { B, T, ids, types, lengths, labels, NULL, NULL, 1, 0, 0 };
  size_t nl = (size_t) B * c.num_labels;
  double loss[2];
  float *g[2], *lg[2];
  int skipped = 0;
  for (int k = 0; k < 2; k++)
    {
      h->head_rows_only = k;
      pmx_tmodel_zero_grad (h);
      loss[k] = pmx_tmodel_forward (h, &b, 1, 5, 7);
      if (isnan (loss[k]) || pmx_tmodel_backward (h) < 0)
        check_fatal ("head rows: step");
      /* The whole layer's output is not kept when its rows were skipped.  */
      skipped += pmx_tmodel_acts (h)->hidden[c.layers] == NULL;
      g[k] = malloc (h->total * sizeof (float));
      lg[k] = malloc (nl * sizeof (float));
      if (!g[k] || !lg[k])
        check_fatal ("head rows: out of memory");
      memcpy (g[k], h->grads, h->total * sizeof (float));
      memcpy (lg[k], pmx_tmodel_logits (h), nl * sizeof (float));
    }
  double worst = 0, scale = 0, lworst = 0;
  for (size_t i = 0; i < h->total; i++)
    {
      double d = fabs (g[0][i] - g[1][i]);
      worst = d > worst ? d : worst;
      scale = fabs (g[0][i]) > scale ? fabs (g[0][i]) : scale;
    }
  for (size_t i = 0; i < nl; i++)
    lworst = fmax (lworst, fabs (lg[0][i] - lg[1][i]));
  int bad = skipped != 1 || !(fabs (loss[0] - loss[1]) <= 1e-6 * fabs (loss[0]))
    || !(lworst <= 1e-6) || !(worst <= 1e-6 + 1e-5 * scale);
  printf ("%s head rows only: loss %.9g / %.9g, logits max |diff| %.3g, "
          "gradients max |diff| %.3g (max |grad| %.3g)%s\n", bad ? "FAIL" : "ok  ",
          loss[0], loss[1], lworst, worst, scale,
          skipped != 1 ? ", but the rows were not skipped" : "");
  for (int k = 0; k < 2; k++)
    {
      free (g[k]);
      free (lg[k]);
    }
  pmx_tmodel_free (h);
  return bad;
}

int
main (int argc, char **argv)
{
  check_program = "test-train-ref";
  if (argc != 3)
    {
      fprintf (stderr, "usage: test-train-ref mux|mlm|mux3|plain DIR\n");
      return 2;
    }
  const char *variant = argv[1], *dir = argv[2];
  pmx_train_config c;
  memset (&c, 0, sizeof c);
  c.vocab = 40; c.hidden = 16; c.layers = 2; c.head_dim = 4;
  c.max_pos = 12; c.type_vocab = 2; c.ln_eps = 1e-12f;
  int B, T = 10, freeze = 0;
  float tw = 1, rw = 0, mw = 0;
  if (!strcmp (variant, "mux"))
    {
      c.mux_n = 2; c.muxed = 1; c.demux_hidden = 20; c.num_labels = 3;
      c.retrieval = 1; c.attend_padding = 1;
      c.heads[0] = 4; c.ffn[0] = 24; c.heads[1] = 2; c.ffn[1] = 12;
      B = 6; tw = 0.9f; rw = 0.1f;
    }
  else if (!strcmp (variant, "mlm"))
    {
      c.mux_n = 2; c.muxed = 1; c.demux_hidden = 12; c.num_labels = 2;
      c.retrieval = 1; c.attend_padding = 1;
      c.heads[0] = 2; c.ffn[0] = 16; c.heads[1] = 1; c.ffn[1] = 16;
      B = 4; tw = 0; rw = 0.5f; mw = 1;
    }
  else if (!strcmp (variant, "mux3"))
    {
      c.mux_n = 3; c.muxed = 1; c.demux_hidden = 16; c.num_labels = 2;
      c.retrieval = 1; c.attend_padding = 1;
      c.heads[0] = 2; c.ffn[0] = 20; c.heads[1] = 3; c.ffn[1] = 8;
      B = 6; tw = 0; rw = 1; freeze = 1;
    }
  else if (!strcmp (variant, "plain"))
    {
      c.mux_n = 1; c.num_labels = 4;
      c.heads[0] = 3; c.ffn[0] = 0; c.heads[1] = 0; c.ffn[1] = 28;
      B = 6;
    }
  else if (!strcmp (variant, "zmux"))
    {
      c.mux_n = 2; c.muxed = 1; c.demux_hidden = 20; c.num_labels = 3;
      c.attend_padding = 1;
      c.heads[0] = 4; c.ffn[0] = 24; c.heads[1] = 2; c.ffn[1] = 12;
      B = 6;
    }
  else if (!strcmp (variant, "zplain"))
    {
      c.mux_n = 1; c.num_labels = 4;
      c.heads[0] = 3; c.ffn[0] = 20; c.heads[1] = 2; c.ffn[1] = 28;
      B = 6;
    }
  else
    {
      fprintf (stderr, "test-train-ref: unknown variant '%s'\n", variant);
      return 2;
    }
  pmx_tmodel *m = pmx_tmodel_new (&c);
  if (!m)
    check_fatal ("model");
  pmx_tmodel_init (m, 1234);
  /* pmx_tmodel_init_from is pmx_tmodel_init and then pmx_tmodel_copy,
     here for a student with a layer transformation that M lacks and one
     more label (a classifier of another shape).  */
  pmx_train_config lc = c;
  lc.layer_transformation = 1;
  lc.lt_out = c.hidden + 3;
  lc.num_labels = c.num_labels + 1;
  pmx_tmodel *s1 = pmx_tmodel_new (&lc), *s2 = pmx_tmodel_new (&lc);
  if (!s1 || !s2)
    check_fatal ("student");
  pmx_tmodel_init (s1, 99);
  pmx_tmodel_copy (s1, m);
  pmx_tmodel_init_from (s2, 99, m);
  CHECK (s1->total == s2->total
         && !memcmp (s1->params, s2->params, s1->total * sizeof (float)),
         "pmx_tmodel_init_from differs from pmx_tmodel_init and pmx_tmodel_copy");
  pmx_tmodel_free (s1);
  pmx_tmodel_free (s2);
  /* As prumux-train runs: it takes effect in plain alone (the others have
     retrieval inputs or are open), whose last layer PyTorch then checks
     on position 0's rows; check_head_rows compares it with the whole
     layer in every variant.  */
  m->head_rows_only = 1;
  int masked = variant[0] == 'z';
  pmx_cofi_z *z = NULL, *dz = NULL;
  uint64_t zs = 4321;
  if (masked)
    {
      /* Masks as a hard-concrete sample has them: a fifth exactly 0, the
         rest in (0.3, 1]; and one whole sublayer off.  */
      z = pmx_cofi_z_new (c.layers, c.hidden, c.heads, c.ffn);
      dz = pmx_cofi_z_new (c.layers, c.hidden, c.heads, c.ffn);
      if (!z || !dz)
        check_fatal ("masks");
#define DRAW(x) do { double u_ = (double) ((zs = pmx_mix64 (zs)) >> 11) * 0x1p-53; \
        (x) = u_ < 0.2 ? 0.0f : (float) (0.3 + 0.7 * (u_ - 0.2) / 0.8); } while (0)
      for (int l = 0; l < c.layers; l++)
        {
          for (int h = 0; h < c.heads[l]; h++)
            DRAW (z->head[l][h]);
          for (int j = 0; j < c.ffn[l]; j++)
            DRAW (z->intermediate[l][j]);
          z->head_layer[l] = 0.9f - 0.2f * l;
          z->mlp[l] = 0.7f + 0.2f * l;
        }
      for (int j = 0; j < c.hidden; j++)
        DRAW (z->hidden_z[j]);
#undef DRAW
      z->hidden_z[0] = 0.75f;   /* [CLS]'s dimension 0 is read by the head */
      if (c.muxed)
        z->head_layer[1] = 0;
      else
        z->mlp[1] = 0;
      for (int l = 0; l < c.layers; l++)
        memset (dz->head[l], 0, c.heads[l] * sizeof (float));
      for (int l = 0; l < c.layers; l++)
        memset (dz->intermediate[l], 0, c.ffn[l] * sizeof (float));
      memset (dz->hidden_z, 0, c.hidden * sizeof (float));
      memset (dz->head_layer, 0, sizeof dz->head_layer);
      memset (dz->mlp, 0, sizeof dz->mlp);
      m->open = 1;
    }

  /* The batch: random tokens, PAD (0) after each row's length.  */
  int G = B / c.mux_n;
  int32_t *ids = calloc (B * T, 4), *types = calloc (B * T, 4);
  int32_t *lengths = calloc (B, 4), *labels = calloc (B, 4);
  int32_t *inst = calloc (G * T, 4), *mlm = malloc (B * T * 4);
  uint64_t s = 99;
  for (int r = 0; r < B; r++)
    {
      lengths[r] = 3 + (int) ((s = pmx_mix64 (s)) % (T - 2));
      labels[r] = (int) ((s = pmx_mix64 (s)) % c.num_labels);
      for (int t = 0; t < T; t++)
        {
          ids[r * T + t] = t < lengths[r]
            ? 1 + (int) ((s = pmx_mix64 (s)) % (c.vocab - 1)) : 0;
          types[r * T + t] = c.muxed ? 0 : t >= lengths[r] / 2;
        }
    }
  labels[1] = -1;               /* an ignored row */
  /* MLM: a third of the real tokens after [CLS] are masked (id 3 stands
     for [MASK]), their originals the targets.  */
  for (int i = 0; i < B * T; i++)
    {
      mlm[i] = -1;
      if (mw != 0 && i % T > 0 && ids[i] != 0
          && (s = pmx_mix64 (s)) % 3 == 0)
        {
          mlm[i] = ids[i];
          ids[i] = 3;
        }
    }
  for (int i = 0; i < G * T; i++)
    inst[i] = (int) ((s = pmx_mix64 (s)) % c.mux_n);
  pmx_tbatch b = { B, T, ids, types, lengths, labels, c.retrieval ? inst : NULL,
                   mw != 0 ? mlm : NULL, tw, rw, mw };

  /* Settings of the AdamW run, passed to the reference in META.  */
  const float lr = 3e-3f, wd = 0.01f, clip = 0.5f;
  const int steps = 10, warmup = 3;
  pmx_meta meta;
  pmx_meta_init (&meta);
  pmx_meta_setf (&meta, "config", "N=%d muxed=%d D=%d C=%d H=%d head_dim=%d",
                 c.mux_n, c.muxed, c.demux_hidden, c.num_labels, c.hidden,
                 c.head_dim);
  pmx_meta_setf (&meta, "mux_n", "%d", c.mux_n);
  pmx_meta_setf (&meta, "muxed", "%d", c.muxed);
  pmx_meta_setf (&meta, "layers", "%d", c.layers);
  pmx_meta_setf (&meta, "head_dim", "%d", c.head_dim);
  pmx_meta_setf (&meta, "attend_padding", "%d", c.attend_padding);
  pmx_meta_setf (&meta, "task_weight", "%.9g", tw);
  pmx_meta_setf (&meta, "retrieval_weight", "%.9g", rw);
  pmx_meta_setf (&meta, "mlm_weight", "%.9g", mw);
  pmx_meta_setf (&meta, "lr", "%.9g", lr);
  pmx_meta_setf (&meta, "weight_decay", "%.9g", wd);
  pmx_meta_setf (&meta, "clip", "%.9g", clip);
  pmx_meta_setf (&meta, "steps", "%d", steps);
  pmx_meta_setf (&meta, "warmup", "%d", warmup);
  pmx_meta_setf (&meta, "freeze_embeddings", "%d", freeze);
  pmx_meta_setf (&meta, "masked", "%d", variant[0] == 'z');

  pmx_record rec;
  pmx_record_init (&rec);
  dump_params (&rec, m, m->params);
  write_stream (dir, "weights.pmxs", NULL, &rec);

  pmx_record_reset (&rec);
  memcpy (add (&rec, "ids", PMX_I32, 2, B, T), ids, B * T * 4);
  memcpy (add (&rec, "type_ids", PMX_I32, 2, B, T), types, B * T * 4);
  memcpy (add (&rec, "lengths", PMX_I32, 1, B, 0), lengths, B * 4);
  memcpy (add (&rec, "label", PMX_I32, 1, B, 0), labels, B * 4);
  memcpy (add (&rec, "ret_inst", PMX_I32, 2, G, T), inst, G * T * 4);
  memcpy (add (&rec, "mlm_labels", PMX_I32, 2, B, T), mlm, B * T * 4);
  /* Gradients of a loss outside the model: random dL/dhidden (every
     layer) and dL/dlogits.  */
  size_t RH = (size_t) G * T * c.hidden;
  float *ext_h = NULL, *ext_l = NULL;
  if (masked)
    {
      ext_h = add (&rec, "ext_dhidden", PMX_F32, 2, c.layers + 1, RH);
      ext_l = add (&rec, "ext_dlogits", PMX_F32, 2, B, c.num_labels);
      for (size_t i = 0; i < (c.layers + 1) * RH; i++)
        ext_h[i] = (float) (((zs = pmx_mix64 (zs)) >> 11) * 0x1p-53 - 0.5) * 0.02f;
      for (int i = 0; i < B * c.num_labels; i++)
        ext_l[i] = (float) (((zs = pmx_mix64 (zs)) >> 11) * 0x1p-53 - 0.5) * 0.2f;
    }
  write_stream (dir, "data.pmxs", &meta, &rec);
  if (masked)
    {
      char path[4096];
      snprintf (path, sizeof path, "%s/z.tsv", dir);
      FILE *f = fopen (path, "w");
      if (!f || pmx_cofi_z_write_tsv (z, f) < 0 || fclose (f) != 0)
        check_fatal (path);
    }

  /* Gradients of one forward/backward.  */
  pmx_tmodel_zero_grad (m);
  double loss = pmx_tmodel_forward_z (m, &b, z, 0, 0, 0);
  if (isnan (loss))
    check_fatal ("forward");
  if (masked)
    {
      pmx_tacts *acts = pmx_tmodel_acts (m);
      for (int l = 0; l <= c.layers; l++)
        memcpy (acts->dhidden[l], ext_h + l * RH, RH * sizeof (float));
      memcpy (acts->dlogits, ext_l, B * c.num_labels * sizeof (float));
    }
  if (pmx_tmodel_backward_z (m, dz) < 0)
    check_fatal ("backward");
  if (masked)
    {
      char path[4096];
      snprintf (path, sizeof path, "%s/dz.tsv", dir);
      FILE *f = fopen (path, "w");
      if (!f || pmx_cofi_z_write_tsv (dz, f) < 0 || fclose (f) != 0)
        check_fatal (path);
    }
  pmx_record_reset (&rec);
  *(double *) add (&rec, "loss", PMX_F64, 1, 1, 0) = loss;
  dump_params (&rec, m, m->grads);
  write_stream (dir, "grads.pmxs", NULL, &rec);

  /* Ten AdamW steps on the same batch; a twin of M takes them by
     pmx_adamw_clip_step, which must give the same bits and leave the
     gradients 0.  */
  pmx_adamw *o = pmx_adamw_new (m);
  pmx_tmodel *m2 = pmx_tmodel_new (&c);
  pmx_adamw *o2 = m2 ? pmx_adamw_new (m2) : NULL;
  if (!o || !o2)
    check_fatal ("optimizer");
  pmx_tmodel_copy (m2, m);
  m2->head_rows_only = m->head_rows_only;
  o->weight_decay = o2->weight_decay = wd;
  o->freeze_embeddings = o2->freeze_embeddings = freeze;
  pmx_record_reset (&rec);
  double *losses = add (&rec, "losses", PMX_F64, 1, steps, 0);
  double *norms = add (&rec, "grad_norms", PMX_F64, 1, steps, 0);
  int fused_same = 1;
  for (int step = 0; step < steps; step++)
    {
      float lr_t = pmx_lr_at (lr, step, warmup, steps, 1);
      pmx_tmodel_zero_grad (m);
      losses[step] = pmx_tmodel_forward_z (m, &b, z, 0, 0, step);
      if (isnan (losses[step]) || pmx_tmodel_backward (m) < 0)
        check_fatal ("step");
      norms[step] = pmx_clip_grad_norm (o, m, clip);
      pmx_adamw_step (o, m, lr_t);
      pmx_tmodel_zero_grad (m2);
      if (isnan (pmx_tmodel_forward_z (m2, &b, z, 0, 0, step))
          || pmx_tmodel_backward (m2) < 0)
        check_fatal ("twin step");
      double n2 = pmx_adamw_clip_step (o2, m2, lr_t, clip);
      fused_same &= n2 == norms[step]
        && !memcmp (m->params, m2->params, m->total * sizeof (float));
      for (size_t i = 0; i < m2->total; i++)
        fused_same &= m2->grads[i] == 0;
    }
  CHECK (fused_same, "pmx_adamw_clip_step differs from clipping and stepping, "
         "or left a gradient nonzero");
  pmx_adamw_free (o2);
  pmx_tmodel_free (m2);
  write_stream (dir, "losses.pmxs", NULL, &rec);

  if (!c.muxed && B >= 6)
    failures += check_accumulation (m, ids, types, lengths, T, c.num_labels);
  failures += check_head_rows (m, ids, c.muxed ? NULL : types, lengths, labels, B, T);
  printf ("%s: loss %.6f, after %d steps %.6f\n", variant, loss, steps,
          losses[steps - 1]);

  pmx_record_free (&rec);
  pmx_meta_free (&meta);
  pmx_adamw_free (o);
  pmx_tmodel_free (m);
  pmx_cofi_z_free (z);
  pmx_cofi_z_free (dz);
  free (ids); free (types); free (lengths); free (labels); free (inst); free (mlm);
  return check_status ();
}
