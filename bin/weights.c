/* weights.c -- weights for prumux-mux, prumux-infer and prumux-demux; see
   weights.h.  */

#include <config.h>
#include "weights.h"
#include "cli.h"
#include "error.h"
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

static void
meta_int (const pmx_meta *m, const char *path, const char *key, long long lo,
          long long hi, long long def, int *dst)
{
  long long v = def;
  if (pmx_meta_get_int (m, key, lo, hi, &v) < 0)
    die_lib (path);
  *dst = (int) v;
}

static void
meta_str (const pmx_meta *m, const char *path, const char *key, const char *def,
          char *dst, size_t size)
{
  const char *v = pmx_meta_get (m, key);
  v = v ? v : def;
  if (strlen (v) >= size)
    die ("%s: META '%s' is too long", path, key);
  strcpy (dst, v);
}

/* Label names "a,b,c" for NUM labels (missing ones are "0", "1", ...).  */
static void
meta_labels (const pmx_meta *m, pmx_model_config *cfg)
{
  if (cfg->num_labels <= 0)
    return;
  cfg->labels = calloc ((size_t) cfg->num_labels, sizeof *cfg->labels);
  if (!cfg->labels)
    die ("memory exhausted");
  const char *list = pmx_meta_get (m, "labels");
  for (int i = 0; i < cfg->num_labels; i++)
    {
      char buf[PMX_LABEL_MAX + 1];
      snprintf (buf, sizeof buf, "%d", i);
      if (list && *list)
        {
          size_t n = strcspn (list, ",");
          if (n > PMX_LABEL_MAX)
            n = PMX_LABEL_MAX;
          memcpy (buf, list, n);
          buf[n] = '\0';
          list += n + (list[n] == ',');
        }
      if (!(cfg->labels[i] = strdup (buf)))
        die ("memory exhausted");
    }
}

void
weights_open (weights *w, const char *model_path, const char *weights_path)
{
  memset (w, 0, sizeof *w);
  pmx_record_init (&w->rec);
  if (model_path)
    {
      if (!(w->model = pmx_model_open (model_path)))
        die_lib (NULL);
      w->cfg = *pmx_model_config_of (w->model);
      /* cfg.labels stays the model's: borrowed, freed with the model.  */
      w->get = pmx_model_lookup;
      w->ctx = w->model;
      return;
    }
  FILE *f = cli_open_input (weights_path);
  pmx_reader *r = pmx_reader_open (f, weights_path);
  if (!r)
    die_lib (NULL);
  const pmx_meta *m = pmx_reader_meta (r);
  pmx_model_config *cfg = &w->cfg;
  meta_int (m, weights_path, "hidden", 0, 1 << 16, 0, &cfg->hidden);
  meta_int (m, weights_path, "layers", 0, 1000, 0, &cfg->layers);
  meta_int (m, weights_path, "head_dim", 1, 4096, 64, &cfg->head_dim);
  meta_int (m, weights_path, "mux_n", 1, 4096, 1, &cfg->mux_n);
  meta_int (m, weights_path, "demux_layers", 0, 64, 3, &cfg->demux_layers);
  meta_int (m, weights_path, "num_labels", 0, PMX_MAX_LABELS, 0, &cfg->num_labels);
  meta_int (m, weights_path, "max_length", 0, 1 << 20, 0, &cfg->max_length);
  meta_int (m, weights_path, "attend_padding", 0, 1, 0, &cfg->attend_padding);
  meta_int (m, weights_path, "normalize", 0, 1, 0, &cfg->normalize);
  const char *eps = pmx_meta_get (m, "ln_eps");
  cfg->ln_eps = eps ? strtod (eps, NULL) : 1e-12;
  if (!(cfg->ln_eps > 0 && cfg->ln_eps < 1))
    die ("%s: bad ln_eps '%s'", weights_path, eps);
  meta_str (m, weights_path, "id", "", cfg->id, sizeof cfg->id);
  meta_str (m, weights_path, "arch", "bert", cfg->arch, sizeof cfg->arch);
  meta_str (m, weights_path, "mux_variant", "none", cfg->mux_variant, sizeof cfg->mux_variant);
  meta_str (m, weights_path, "demux_variant", "none", cfg->demux_variant,
            sizeof cfg->demux_variant);
  meta_str (m, weights_path, "pooling", "", cfg->pooling, sizeof cfg->pooling);
  meta_labels (m, cfg);
  int rc = pmx_reader_read (r, &w->rec);
  if (rc < 0)
    die_lib (NULL);
  if (rc == 0)
    die ("%s: no record of weights", weights_path);
  pmx_reader_close (r);
  cli_close_input (f, weights_path);
  w->get = pmx_record_lookup;
  w->ctx = &w->rec;
}

void
weights_close (weights *w)
{
  if (w->model)
    pmx_model_close (w->model);
  else if (w->cfg.labels)
    {
      for (int i = 0; i < w->cfg.num_labels; i++)
        free (w->cfg.labels[i]);
      free (w->cfg.labels);
    }
  pmx_record_free (&w->rec);
}
