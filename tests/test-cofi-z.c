/* test-cofi-z.c -- unit tests of the CoFi structure masks (lib/prune/cofi-z.c):
   the masks TSV round trip (exact), its errors, and the sizes of §6.4.  */

#include <config.h>
#include "cofi-z.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static pmx_cofi_z *
read_string (const char *text)
{
  FILE *f = fmemopen ((void *) text, strlen (text), "r");
  if (!f)
    exit (99);
  pmx_cofi_z *z = pmx_cofi_z_read_tsv (f, "mem.tsv");
  fclose (f);
  return z;
}

static void
test_round_trip (void)
{
  int heads[3] = { 2, 0, 3 }, ffn[3] = { 4, 5, 0 };
  pmx_cofi_z *z = pmx_cofi_z_new (3, 6, heads, ffn);
  CHECK (z, "new: %s", pmx_errmsg ());
  if (!z)
    return;
  z->head[0][1] = 0.123456789f;
  z->head_layer[2] = 0;
  z->intermediate[1][4] = 1e-7f;
  z->mlp[0] = 0.5f;
  z->hidden_z[5] = 0;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&buf, &len);
  CHECK (pmx_cofi_z_write_tsv (z, f) == 0, "write");
  fclose (f);
  /* 5 heads + 3 head_layer + 9 intermediate + 3 mlp + 6 hidden + header */
  int lines = 0;
  for (size_t i = 0; i < len; i++)
    lines += buf[i] == '\n';
  CHECK (lines == 27, "%d lines", lines);
  pmx_cofi_z *r = read_string (buf);
  CHECK (r, "read back: %s", pmx_errmsg ());
  if (r)
    {
      CHECK (r->layers == 3 && r->hidden == 6, "shape %d %d", r->layers,
             r->hidden);
      for (int l = 0; l < 3; l++)
        {
          CHECK (r->heads[l] == heads[l] && r->ffn[l] == ffn[l], "layer %d", l);
          CHECK (r->head_layer[l] == z->head_layer[l]
                 && r->mlp[l] == z->mlp[l], "layer %d scalars", l);
          for (int h = 0; h < heads[l]; h++)
            CHECK (r->head[l][h] == z->head[l][h], "head %d %d", l, h);
          for (int j = 0; j < ffn[l]; j++)
            CHECK (r->intermediate[l][j] == z->intermediate[l][j],
                   "intermediate %d %d", l, j);
        }
      for (int d = 0; d < 6; d++)
        CHECK (r->hidden_z[d] == z->hidden_z[d], "hidden %d", d);
    }
  pmx_cofi_z_free (r);
  pmx_cofi_z_free (z);
  free (buf);
}

static void
test_errors (void)
{
  static const char *const bad[] = {
    "layer\tkind\tindex\tz\n0\thead\t0\t1\n0\tmlp\t0\t1\n-\thidden\t0\t1\n",
    "layer\tkind\tindex\tz\n0\thead_layer\t0\t1\n0\tmlp\t0\t1\n"
      "-\thidden\t0\t1\n-\thidden\t0\t1\n",
    "layer\tkind\tindex\tz\n0\thead_layer\t0\t1\n0\tmlp\t0\t1\n"
      "-\thidden\t1\t1\n",
    "layer\tkind\tindex\tz\n0\thead_layer\t0\t1.5\n0\tmlp\t0\t1\n"
      "-\thidden\t0\t1\n",
    "layer\tkind\tindex\tz\n0\thead_layer\t0\tnan\n0\tmlp\t0\t1\n"
      "-\thidden\t0\t1\n",
    "layer\tkind\tindex\tz\n0\thead_layer\t0\t1\n0\tmlp\t0\t1\n"
      "0\thidden\t0\t1\n",
    "layer\tkind\tindex\tz\n0\theads\t0\t1\n",
    "layer\tkind\tindex\n",
    "layer\tkind\tindex\tz\n0\thead_layer\t0\t1\n0\tmlp\t0\t1\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      pmx_cofi_z *z = read_string (bad[i]);
      CHECK (!z, "bad table %zu accepted", i);
      CHECK (!z && *pmx_errmsg (), "bad table %zu: no message", i);
      pmx_cofi_z_free (z);
    }
}

static void
test_sizes (void)
{
  /* MUX-PLM-SPEC.md §6.4: BERT-base's prunable size.  */
  double p = pmx_cofi_prunable_size (12, 768, 12, 3072);
  CHECK (p == 85017600.0, "BERT-base prunable %.1f", p);
  int heads[12], ffn[12];
  for (int l = 0; l < 12; l++)
    heads[l] = 12, ffn[l] = 3072;
  pmx_cofi_z *z = pmx_cofi_z_new (12, 768, heads, ffn);
  if (!z)
    return;
  /* All kept: remaining = 144*768*256 + 12*3072*768*2 = 84,934,656.  */
  double s = pmx_cofi_z_sparsity (z, 64, p);
  CHECK (fabs (s - (1 - 84934656.0 / 85017600.0)) < 1e-12, "dense %.9f", s);
  /* Half of the hidden dims and layer 0's attention gone:
     remaining = (132*384*256 + 12*3072*384*2) = 12,976,128 + 28,311,552.  */
  for (int d = 0; d < 384; d++)
    z->hidden_z[d] = 0;
  z->head_layer[0] = 0;
  s = pmx_cofi_z_sparsity (z, 64, p);
  CHECK (fabs (s - (1 - 41287680.0 / 85017600.0)) < 1e-12, "pruned %.9f", s);
  pmx_cofi_z_free (z);
}

int
main (void)
{
  test_round_trip ();
  test_errors ();
  test_sizes ();
  return failures ? 1 : 0;
}
