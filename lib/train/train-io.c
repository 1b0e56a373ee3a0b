/* train-io.c -- archives and training state (see train-io.h).  */

#include <config.h>
#include "train-io.h"
#include "error.h"
#include "outfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t
rows_of (const pmx_model *pm, const char *name)
{
  const pmx_tensor *t = pmx_model_tensor (pm, name);
  return t && t->rank >= 1 ? t->shape[0] : 0;
}

/* Tensors that an older or foreign archive may lack and that training can
   start from scratch.  */
static int
may_be_new (const char *name)
{
  return !strncmp (name, "retrieval_head.", 15)
    || !strncmp (name, "demux_module.layer_norm_", 24);
}

/* Copy the archive tensor T into the parameter P of M; -1 with an error
   when its type or shape differs.  */
static int
copy_param (pmx_tmodel *m, const pmx_tparam *p, const pmx_tensor *t)
{
  if (t->dtype != PMX_F32 || t->rank != p->rank || t->shape[0] != p->shape[0]
      || (p->rank == 2 && t->shape[1] != p->shape[1]))
    {
      char buf[200];
      pmx_error ("tensor '%s' has shape %s, expected %lldx%lld", p->name,
                 pmx_shape_str (t, buf, sizeof buf),
                 (long long) p->shape[0], (long long) p->shape[1]);
      return -1;
    }
  memcpy (m->params + p->offset, t->data, p->size * sizeof (float));
  return 0;
}

pmx_tmodel *
pmx_tmodel_from_archive (const pmx_model *pm, int want_retrieval,
                         float dropout, uint64_t seed, pmx_record *extra)
{
  const pmx_model_config *mc = pmx_model_config_of (pm);
  /* The per-layer shapes are the tensors' (a pruned model's differ from
     layer to layer; pmx_model_open has checked they are whole heads); the
     rest is the configuration's.  */
  int heads[PMX_TRAIN_MAX_LAYERS], ffn[PMX_TRAIN_MAX_LAYERS];
  for (int l = 0; l < mc->layers && l < PMX_TRAIN_MAX_LAYERS; l++)
    pmx_model_layer_shape (pm, l, &heads[l], &ffn[l]);
  int retrieval = want_retrieval
    || pmx_model_tensor (pm, "retrieval_head.decoder.weight") != NULL;
  pmx_train_config c;
  if (pmx_train_config_from_model (&c, mc, heads, ffn,
                                   (int) rows_of (pm, "demux_module.dense_1.weight"),
                                   retrieval, dropout) < 0)
    return NULL;
  pmx_tmodel *m = pmx_tmodel_new (&c);
  if (!m)
    return NULL;
  for (int k = 0; k < m->nparams; k++)
    {
      const pmx_tparam *p = &m->param[k];
      const pmx_tensor *t = pmx_model_tensor (pm, p->name);
      if (!t)
        {
          if (may_be_new (p->name))
            {
              pmx_tmodel_init_param (m, k, seed);   /* the rest is copied */
              continue;
            }
          pmx_error ("tensor '%s' is missing", p->name);
          goto fail;
        }
      if (copy_param (m, p, t) < 0)
        goto fail;
    }
  for (int i = 0; extra && i < pmx_model_tensor_count (pm); i++)
    {
      const pmx_tensor *t = pmx_model_tensor_at (pm, i);
      if (pmx_tmodel_find (m, t->name))
        continue;
      pmx_tensor *x = pmx_record_add (extra, t->name, t->dtype, t->rank,
                                      t->shape);
      if (!x)
        goto fail;
      memcpy (x->data, t->data, t->nbytes);
    }
  return m;
fail:
  pmx_tmodel_free (m);
  return NULL;
}

int
pmx_tparam_in_encoder (const pmx_tparam *p)
{
  return !strncmp (p->name, "embeddings.", 11) || !strncmp (p->name, "encoder.", 8);
}

int
pmx_tmodel_load_encoder (pmx_tmodel *m, const pmx_model *pm)
{
  for (int k = 0; k < m->nparams; k++)
    {
      const pmx_tparam *p = &m->param[k];
      if (!pmx_tparam_in_encoder (p))
        continue;
      const pmx_tensor *t = pmx_model_tensor (pm, p->name);
      if (!t)
        {
          pmx_error ("tensor '%s' is missing", p->name);
          return -1;
        }
      if (copy_param (m, p, t) < 0)
        return -1;
    }
  return 0;
}

void
pmx_tmodel_archive_config (const pmx_tmodel *m, pmx_model_config *cfg)
{
  const pmx_train_config *c = &m->cfg;
  int heads = 1, ffn = 1;
  for (int l = 0; l < c->layers; l++)
    {
      heads = c->heads[l] > heads ? c->heads[l] : heads;
      ffn = c->ffn[l] > ffn ? c->ffn[l] : ffn;
    }
  strcpy (cfg->arch, "bert");
  cfg->vocab_size = c->vocab;
  cfg->hidden = c->hidden;
  cfg->layers = c->layers;
  cfg->head_dim = c->head_dim;
  if (!(cfg->sparsity > 0))
    {
      /* A pruned model keeps the unpruned shape here, against which its
         sparsity counts (pmx_model_prunable).  */
      cfg->heads = heads;
      cfg->intermediate = ffn;
    }
  cfg->max_position = c->max_pos;
  cfg->type_vocab = c->type_vocab;
  cfg->ln_eps = c->ln_eps;
  cfg->mux_n = c->mux_n;
  strcpy (cfg->mux_variant, c->muxed ? "gaussian_hadamard" : "none");
  strcpy (cfg->demux_variant, c->muxed ? "index_pos" : "none");
  cfg->demux_layers = c->muxed ? 3 : 0;
  cfg->num_labels = c->num_labels;
  strcpy (cfg->pooling, "cls");
  cfg->normalize = 0;
  cfg->attend_padding = c->attend_padding;
  if (cfg->max_length > c->max_pos || cfg->max_length < 2)
    cfg->max_length = c->max_pos;
}

int
pmx_tmodel_save (const pmx_tmodel *m, const char *path, pmx_model_config *cfg,
                 const pmx_record *extra, const char *vocab, size_t vocab_len)
{
  pmx_record rec;
  pmx_record_init (&rec);
  int rc = 0;
  for (int k = 0; k < m->nparams && rc == 0; k++)
    {
      const pmx_tparam *p = &m->param[k];
      if (p->aux)
        continue;
      pmx_tensor *t = pmx_record_add (&rec, p->name, PMX_F32, p->rank, p->shape);
      if (!t)
        rc = -1;
      else
        memcpy (t->data, m->params + p->offset, p->size * sizeof (float));
    }
  for (int i = 0; extra && i < extra->count && rc == 0; i++)
    {
      const pmx_tensor *s = pmx_record_at (extra, i);
      pmx_tensor *t = pmx_record_add (&rec, s->name, s->dtype, s->rank, s->shape);
      if (!t)
        rc = -1;
      else
        memcpy (t->data, s->data, s->nbytes);
    }
  pmx_tmodel_archive_config (m, cfg);
  if (rc == 0)
    rc = pmx_model_save (path, cfg, &rec, vocab, vocab_len, PMX_COMPRESS_NONE);
  pmx_record_free (&rec);
  return rc;
}

/* ---- Training state ----------------------------------------------------- */

static const char *const state_names[3] = { "params", "adam_m", "adam_v" };

int
pmx_train_state_save (const char *path, const pmx_meta *meta,
                      const pmx_tmodel *m, const pmx_adamw *o)
{
  return pmx_train_state_save_x (path, meta, m, o, NULL);
}

int
pmx_train_state_load (const char *path, pmx_meta *meta, pmx_tmodel *m,
                      pmx_adamw *o)
{
  return pmx_train_state_load_x (path, meta, m, o, NULL);
}

int
pmx_train_state_save_x (const char *path, const pmx_meta *meta,
                        const pmx_tmodel *m, const pmx_adamw *o,
                        const pmx_record *extra)
{
  pmx_outfile of;
  if (pmx_outfile_open (&of, path) < 0)
    return -1;
  int fd = of.fd;
  FILE *f = fdopen (fd, "wb");
  pmx_record rec;
  pmx_record_init (&rec);
  pmx_meta mt;
  pmx_meta_init (&mt);
  int rc = f ? 0 : pmx_error_errno (errno, "%s", path);
  if (rc == 0 && (pmx_meta_copy (&mt, meta) < 0
                  || pmx_meta_setf (&mt, "adam_t", "%lld", (long long) o->t) < 0))
    rc = -1;
  const float *src[3] = { m->params, o->m, o->v };
  int64_t n = (int64_t) m->total;
  for (int i = 0; i < 3 && rc == 0; i++)
    {
      pmx_tensor *t = pmx_record_add (&rec, state_names[i], PMX_F32, 1, &n);
      if (!t)
        rc = -1;
      else
        memcpy (t->data, src[i], m->total * sizeof (float));
    }
  for (int i = 0; extra && i < extra->count && rc == 0; i++)
    {
      const pmx_tensor *s = pmx_record_at (extra, i);
      pmx_tensor *t = pmx_record_add (&rec, s->name, s->dtype, s->rank, s->shape);
      if (!t)
        rc = -1;
      else
        memcpy (t->data, s->data, s->nbytes);
    }
  if (rc == 0)
    {
      pmx_writer *w = pmx_writer_open (f, path, &mt);
      if (w)
        pmx_writer_set_flush (w, 0);
      if (!w || pmx_writer_write (w, &rec) < 0 || pmx_writer_finish (w) < 0)
        rc = -1;
      pmx_writer_close (w);
    }
  if (f && fflush (f) != 0 && rc == 0)
    rc = pmx_error_errno (errno, "%s", path);
  if (rc == 0)
    rc = pmx_outfile_sync (&of);
  if (f)
    {
      if (fclose (f) != 0 && rc == 0)
        rc = pmx_error_errno (errno, "%s", path);
      of.fd = -1;               /* closed with f */
    }
  if (rc == 0)
    rc = pmx_outfile_commit (&of);
  else
    pmx_outfile_abort (&of);
  pmx_record_free (&rec);
  pmx_meta_free (&mt);
  return rc;
}

int
pmx_train_state_load_x (const char *path, pmx_meta *meta, pmx_tmodel *m,
                        pmx_adamw *o, pmx_record *extra)
{
  FILE *f = fopen (path, "rb");
  if (!f)
    return pmx_error_errno (errno, "%s", path);
  pmx_reader *r = pmx_reader_open (f, path);
  pmx_record rec;
  pmx_record_init (&rec);
  int rc = r ? 0 : -1;
  int got = rc == 0 ? pmx_reader_read (r, &rec) : -1;
  if (rc == 0 && got != 1)
    rc = got < 0 ? -1 : pmx_error ("%s: no state record", path);
  float *dst[3] = { m->params, o->m, o->v };
  for (int i = 0; i < 3 && rc == 0; i++)
    {
      const pmx_tensor *t = pmx_record_expect (&rec, state_names[i], PMX_F32, 1);
      if (!t || t->shape[0] != (int64_t) m->total)
        rc = t ? pmx_error ("%s: '%s' has %lld values, the model %zu: not"
                            " this model's state", path, state_names[i],
                            (long long) t->shape[0], m->total)
          : pmx_error_prefix ("%s", path);
      else
        memcpy (dst[i], t->data, m->total * sizeof (float));
    }
  for (int i = 0; extra && rc == 0 && i < rec.count; i++)
    {
      const pmx_tensor *s = pmx_record_at (&rec, i);
      if (!strcmp (s->name, state_names[0]) || !strcmp (s->name, state_names[1])
          || !strcmp (s->name, state_names[2]))
        continue;
      pmx_tensor *t = pmx_record_add (extra, s->name, s->dtype, s->rank,
                                      s->shape);
      if (!t)
        rc = -1;
      else
        memcpy (t->data, s->data, s->nbytes);
    }
  long long t = 0;
  if (rc == 0 && pmx_meta_copy (meta, pmx_reader_meta (r)) < 0)
    rc = -1;
  int have = rc == 0 ? pmx_meta_get_int (meta, "adam_t", 0, 1LL << 40, &t) : 0;
  if (rc == 0 && have != 0)
    rc = have < 0 ? pmx_error_prefix ("%s", path)
      : pmx_error ("%s: no adam_t", path);
  o->t = t;
  pmx_record_free (&rec);
  pmx_reader_close (r);
  fclose (f);
  return rc;
}
