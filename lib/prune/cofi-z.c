/* cofi-z.c -- CoFi structure masks: allocation, the masks TSV, sparsity.  */

#include <config.h>

#include "cofi-z.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tsvtable.h"

void
pmx_cofi_z_free (pmx_cofi_z *z)
{
  if (!z)
    return;
  for (int l = 0; l < z->layers; l++)
    {
      free (z->head[l]);
      free (z->intermediate[l]);
    }
  free (z->hidden_z);
  free (z);
}

static float *
ones (int n)
{
  float *v = malloc ((size_t) (n > 0 ? n : 1) * sizeof *v);
  if (v)
    for (int i = 0; i < n; i++)
      v[i] = 1.0f;
  return v;
}

pmx_cofi_z *
pmx_cofi_z_new (int layers, int hidden, const int *heads, const int *ffn)
{
  if (layers < 1 || layers > PMX_COFI_MAX_LAYERS || hidden < 1
      || hidden > (1 << 20))
    {
      pmx_error ("masks: %d layers of hidden size %d is not a valid shape",
                 layers, hidden);
      return NULL;
    }
  for (int l = 0; l < layers; l++)
    if (heads[l] < 0 || heads[l] > 4096 || ffn[l] < 0 || ffn[l] > (1 << 20))
      {
        pmx_error ("masks: layer %d: %d heads, FFN width %d is not a valid "
                   "shape", l, heads[l], ffn[l]);
        return NULL;
      }
  pmx_cofi_z *z = calloc (1, sizeof *z);
  if (!z)
    goto nomem;
  z->layers = layers;
  z->hidden = hidden;
  for (int l = 0; l < layers; l++)
    {
      z->heads[l] = heads[l];
      z->ffn[l] = ffn[l];
      z->head_layer[l] = 1.0f;
      z->mlp[l] = 1.0f;
      if ((heads[l] && !(z->head[l] = ones (heads[l])))
          || (ffn[l] && !(z->intermediate[l] = ones (ffn[l]))))
        goto nomem;
    }
  if (!(z->hidden_z = ones (hidden)))
    goto nomem;
  return z;
nomem:
  pmx_cofi_z_free (z);
  pmx_error_errno (ENOMEM, "masks");
  return NULL;
}

int
pmx_cofi_z_write_tsv (const pmx_cofi_z *z, FILE *f)
{
  fputs ("layer\tkind\tindex\tz\n", f);
  for (int l = 0; l < z->layers; l++)
    for (int h = 0; h < z->heads[l]; h++)
      fprintf (f, "%d\thead\t%d\t%.9g\n", l, h, z->head[l][h]);
  for (int l = 0; l < z->layers; l++)
    fprintf (f, "%d\thead_layer\t0\t%.9g\n", l, z->head_layer[l]);
  for (int l = 0; l < z->layers; l++)
    for (int j = 0; j < z->ffn[l]; j++)
      fprintf (f, "%d\tintermediate\t%d\t%.9g\n", l, j, z->intermediate[l][j]);
  for (int l = 0; l < z->layers; l++)
    fprintf (f, "%d\tmlp\t0\t%.9g\n", l, z->mlp[l]);
  for (int d = 0; d < z->hidden; d++)
    fprintf (f, "-\thidden\t%d\t%.9g\n", d, z->hidden_z[d]);
  if (ferror (f))
    return pmx_error_errno (errno, "masks: write error");
  return 0;
}

/* The kinds, in the TSV's order.  */
enum { K_HEAD, K_HEAD_LAYER, K_INTERMEDIATE, K_MLP, K_HIDDEN, K_COUNT };
static const char *const kind_name[K_COUNT] =
  { "head", "head_layer", "intermediate", "mlp", "hidden" };

/* One parsed row.  */
typedef struct
{
  int layer, kind;
  long index;
  float z;
} zrow;

static int
parse_row (const pmx_tsv *t, size_t r, const int col[4], zrow *out)
{
  char **row = t->rows[r];
  const char *where = t->name;
  size_t line = t->line[r];
  char *end;
  out->kind = -1;
  for (int k = 0; k < K_COUNT; k++)
    if (!strcmp (row[col[1]], kind_name[k]))
      out->kind = k;
  if (out->kind < 0)
    return pmx_error ("%s:%zu: unknown mask kind '%s'", where, line,
                      row[col[1]]);
  if (out->kind == K_HIDDEN)
    {
      if (strcmp (row[col[0]], "-"))
        return pmx_error ("%s:%zu: the layer of a hidden mask is '-'",
                          where, line);
      out->layer = -1;
    }
  else
    {
      errno = 0;
      long l = strtol (row[col[0]], &end, 10);
      if (errno || end == row[col[0]] || *end || l < 0
          || l >= PMX_COFI_MAX_LAYERS)
        return pmx_error ("%s:%zu: bad layer '%s'", where, line,
                          row[col[0]]);
      out->layer = (int) l;
    }
  errno = 0;
  out->index = strtol (row[col[2]], &end, 10);
  if (errno || end == row[col[2]] || *end || out->index < 0
      || out->index >= (1L << 20))
    return pmx_error ("%s:%zu: bad index '%s'", where, line, row[col[2]]);
  if ((out->kind == K_HEAD_LAYER || out->kind == K_MLP) && out->index != 0)
    return pmx_error ("%s:%zu: the index of a %s mask is 0", where, line,
                      kind_name[out->kind]);
  errno = 0;
  double v = strtod (row[col[3]], &end);
  if (errno || end == row[col[3]] || *end || !(v >= 0.0 && v <= 1.0))
    return pmx_error ("%s:%zu: z '%s' is not a number in [0, 1]", where,
                      line, row[col[3]]);
  out->z = (float) v;
  return 0;
}

pmx_cofi_z *
pmx_cofi_z_read_tsv (FILE *f, const char *name)
{
  static const char *const cols[4] = { "layer", "kind", "index", "z" };
  pmx_cofi_z *z = NULL;
  zrow *rows = NULL;
  unsigned char *seen = NULL;
  pmx_tsv *t = pmx_tsv_read (f, name);
  if (!t)
    return NULL;
  int col[4];
  for (int c = 0; c < 4; c++)
    if ((col[c] = pmx_tsv_column (t, cols[c])) < 0)
      {
        pmx_error ("%s: no column '%s'", name, cols[c]);
        goto fail;
      }
  rows = malloc ((t->nrows ? t->nrows : 1) * sizeof *rows);
  if (!rows)
    {
      pmx_error_errno (ENOMEM, "%s", name);
      goto fail;
    }

  /* First pass: the shape.  Sizes are the counts of rows of each kind;
     the second pass checks that the indices are exactly 0..n-1.  */
  int layers = 0, hidden = 0, has_hl[PMX_COFI_MAX_LAYERS] = { 0 },
    has_mlp[PMX_COFI_MAX_LAYERS] = { 0 };
  int heads[PMX_COFI_MAX_LAYERS] = { 0 }, ffn[PMX_COFI_MAX_LAYERS] = { 0 };
  for (size_t r = 0; r < t->nrows; r++)
    {
      zrow *zr = &rows[r];
      if (parse_row (t, r, col, zr) < 0)
        goto fail;
      if (zr->layer >= layers)
        layers = zr->layer + 1;
      switch (zr->kind)
        {
        case K_HEAD: heads[zr->layer]++; break;
        case K_INTERMEDIATE: ffn[zr->layer]++; break;
        case K_HEAD_LAYER: has_hl[zr->layer]++; break;
        case K_MLP: has_mlp[zr->layer]++; break;
        default: hidden++; break;
        }
    }
  for (int l = 0; l < layers; l++)
    if (has_hl[l] != 1 || has_mlp[l] != 1)
      {
        pmx_error ("%s: layer %d needs one head_layer and one mlp mask",
                   name, l);
        goto fail;
      }
  if (!layers || !hidden)
    {
      pmx_error ("%s: no %s masks", name, layers ? "hidden" : "layer");
      goto fail;
    }
  if (!(z = pmx_cofi_z_new (layers, hidden, heads, ffn)))
    goto fail;

  /* Second pass: the values; every index once.  SEEN is indexed like the
     values, kind by kind.  */
  size_t nseen = (size_t) hidden;
  for (int l = 0; l < layers; l++)
    nseen += (size_t) heads[l] + (size_t) ffn[l] + 2;
  if (!(seen = calloc (nseen, 1)))
    {
      pmx_error_errno (ENOMEM, "%s", name);
      goto fail;
    }
  for (size_t r = 0; r < t->nrows; r++)
    {
      const zrow *zr = &rows[r];
      size_t base = 0;
      float *slot = NULL;
      long n = 1;
      for (int l = 0; l < zr->layer; l++)
        base += (size_t) heads[l] + (size_t) ffn[l] + 2;
      switch (zr->kind)
        {
        case K_HEAD:
          n = heads[zr->layer];
          slot = z->head[zr->layer];
          break;
        case K_HEAD_LAYER:
          base += (size_t) heads[zr->layer];
          slot = &z->head_layer[zr->layer];
          break;
        case K_INTERMEDIATE:
          base += (size_t) heads[zr->layer] + 1;
          n = ffn[zr->layer];
          slot = z->intermediate[zr->layer];
          break;
        case K_MLP:
          base += (size_t) heads[zr->layer] + 1 + (size_t) ffn[zr->layer];
          slot = &z->mlp[zr->layer];
          break;
        default:
          base = nseen - (size_t) hidden;
          n = hidden;
          slot = z->hidden_z;
          break;
        }
      if (zr->index >= n || seen[base + (size_t) zr->index]++)
        {
          pmx_error ("%s:%zu: %s mask %ld %s", name, t->line[r],
                     kind_name[zr->kind], zr->index,
                     zr->index >= n ? "is out of range" : "is repeated");
          goto fail;
        }
      slot[zr->index] = zr->z;
    }
  free (seen);
  free (rows);
  pmx_tsv_free (t);
  return z;
fail:
  free (seen);
  free (rows);
  pmx_cofi_z_free (z);
  pmx_tsv_free (t);
  return NULL;
}

double
pmx_cofi_prunable_size (int layers, int hidden, int heads, int ffn)
{
  double h = hidden;
  double attn = heads > 0 ? 4 * h * h + 4 * h : 0;
  double mlp = ffn > 0 ? 2 * h * ffn + 5 * h : 0;
  return layers * (attn + mlp);
}

double
pmx_cofi_z_sparsity (const pmx_cofi_z *z, int head_dim, double prunable)
{
  double kept_hidden = 0, remaining = 0;
  for (int d = 0; d < z->hidden; d++)
    kept_hidden += z->hidden_z[d] != 0;
  for (int l = 0; l < z->layers; l++)
    {
      int kh = 0, kf = 0;
      if (z->head_layer[l] != 0)
        for (int h = 0; h < z->heads[l]; h++)
          kh += z->head[l][h] != 0;
      if (z->mlp[l] != 0)
        for (int j = 0; j < z->ffn[l]; j++)
          kf += z->intermediate[l][j] != 0;
      remaining += kh * kept_hidden * 4.0 * head_dim + kf * kept_hidden * 2.0;
    }
  return prunable > 0 ? 1.0 - remaining / prunable : 0.0;
}
