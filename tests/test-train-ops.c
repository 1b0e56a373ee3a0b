/* test-train-ops.c -- every training op against a double-precision
   reference: the float forward must match the reference forward, and the
   float backward must match central finite differences of the reference.

   Each op's loss is L = sum (out * W) for a fixed random W, so the upstream
   gradient handed to the backward is W.  Tolerances: forward |f - ref| <=
   1e-5 (1 + |ref|); gradients |g - fd| <= 2e-5 + 1e-4 |fd| with fd taken in
   double with step 1e-5 (truncation error about 1e-10).  */

#include <config.h>
#include "train-ops.h"
#include "kernels.h"
#include "mux.h"
#include "par.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static uint64_t rng_state = 42;

static double
urand (void)                    /* uniform in [-1, 1) */
{
  rng_state = pmx_mix64 (rng_state);
  return (double) (rng_state >> 11) * 0x1p-53 * 2.0 - 1.0;
}

static double *
drand_array (int n, double scale)
{
  double *a = malloc (n * sizeof *a);
  for (int i = 0; i < n; i++)
    a[i] = urand () * scale;
  return a;
}

static float *
to_float (const double *a, int n)
{
  float *f = malloc (n * sizeof *f);
  for (int i = 0; i < n; i++)
    f[i] = (float) a[i];
  return f;
}

static float *
fzeros (int n)
{
  return calloc (n, sizeof (float));
}

/* The reference loss of the op under test, reading the globals below.  */
static double (*ref_loss) (void);
static double *W;               /* upstream gradient = loss weights */

static double
dot (const double *a, const double *b, int n)
{
  double s = 0;
  for (int i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

static void
check_forward (const char *what, const float *f, const double *ref, int n)
{
  for (int i = 0; i < n; i++)
    if (!(fabs (f[i] - ref[i]) <= 1e-5 * (1 + fabs (ref[i]))))
      {
        printf ("FAIL %s forward [%d]: %.9g, reference %.9g\n", what, i, f[i],
                ref[i]);
        failures++;
        return;
      }
}

/* Compare the analytic gradient G (N) of input X (double, perturbed in
   place) with central differences of ref_loss.  */
static void
check_grad (const char *what, double *x, const float *g, int n)
{
  const double h = 1e-5;
  double worst = 0;
  for (int i = 0; i < n; i++)
    {
      double keep = x[i];
      x[i] = keep + h;
      double lp = ref_loss ();
      x[i] = keep - h;
      double lm = ref_loss ();
      x[i] = keep;
      double fd = (lp - lm) / (2 * h);
      double err = fabs (g[i] - fd);
      if (err > worst)
        worst = err;
      if (!(err <= 2e-5 + 1e-4 * fabs (fd)))
        {
          printf ("FAIL %s grad [%d]: %.9g, finite difference %.9g\n", what, i,
                  g[i], fd);
          failures++;
          return;
        }
    }
  printf ("ok   %-28s %6d values, max |error| %.2e\n", what, n, worst);
}

/* ---- Embedding sum ------------------------------------------------------ */

enum { R_ = 6, T_ = 3, H_ = 5, V_ = 7 };
static double *word, *pos, *typ;
static int32_t ids[R_] = { 1, 4, 4, 0, 6, 1 }, types[R_] = { 0, 1, 0, 1, 1, 0 };

static void
ref_embed (double *out)
{
  for (int r = 0; r < R_; r++)
    for (int j = 0; j < H_; j++)
      out[r * H_ + j] = word[ids[r] * H_ + j] + pos[(r % T_) * H_ + j]
        + typ[types[r] * H_ + j];
}

static double
loss_embed (void)
{
  double out[R_ * H_];
  ref_embed (out);
  return dot (out, W, R_ * H_);
}

static void
test_embed (void)
{
  word = drand_array (V_ * H_, 1);
  pos = drand_array (T_ * H_, 1);
  typ = drand_array (2 * H_, 1);
  W = drand_array (R_ * H_, 1);
  float *fw = to_float (word, V_ * H_), *fp = to_float (pos, T_ * H_);
  float *ft = to_float (typ, 2 * H_), *fW = to_float (W, R_ * H_);
  float out[R_ * H_];
  double ref[R_ * H_];
  pmx_embed_sum_fwd (NULL, out, ids, types, fw, fp, ft, R_, T_, H_);
  ref_embed (ref);
  check_forward ("embedding", out, ref, R_ * H_);
  float *dw = fzeros (V_ * H_), *dp = fzeros (T_ * H_), *dt = fzeros (2 * H_);
  pmx_embed_sum_bwd (NULL, dw, dp, dt, fW, ids, types, R_, T_, H_);
  /* On 2 threads (rows, and columns of the tables, split between them):
     the same bits.  */
  pmx_par *par = pmx_par_new (2);
  float out2[R_ * H_];
  float *dw2 = fzeros (V_ * H_), *dp2 = fzeros (T_ * H_), *dt2 = fzeros (2 * H_);
  if (!par)
    exit (99);
  pmx_embed_sum_fwd (par, out2, ids, types, fw, fp, ft, R_, T_, H_);
  pmx_embed_sum_bwd (par, dw2, dp2, dt2, fW, ids, types, R_, T_, H_);
  if (memcmp (out, out2, sizeof out) || memcmp (dw, dw2, V_ * H_ * sizeof *dw)
      || memcmp (dp, dp2, T_ * H_ * sizeof *dp) || memcmp (dt, dt2, 2 * H_ * sizeof *dt))
    {
      printf ("FAIL embedding: 2 threads give other bits than one\n");
      failures++;
    }
  pmx_par_free (par);
  free (dw2); free (dp2); free (dt2);
  ref_loss = loss_embed;
  check_grad ("embedding word", word, dw, V_ * H_);
  check_grad ("embedding position", pos, dp, T_ * H_);
  check_grad ("embedding type", typ, dt, 2 * H_);
  free (word); free (pos); free (typ); free (W);
  free (fw); free (fp); free (ft); free (fW); free (dw); free (dp); free (dt);
}

/* ---- LayerNorm ---------------------------------------------------------- */

enum { LR = 4, LC = 9 };
static double *lx, *lw, *lb;
static const float *lz;         /* CoFi's hidden mask, or NULL */

/* With LZ, the statistics are over the columns with nonzero z only and
   the other columns are copied (CoFiLayerNorm).  */
static void
ref_layernorm (double *out)
{
  int kept = 0;
  for (int j = 0; j < LC; j++)
    kept += !lz || lz[j] != 0;
  for (int r = 0; r < LR; r++)
    {
      const double *x = lx + r * LC;
      double m = 0, v = 0;
      for (int j = 0; j < LC; j++)
        m += !lz || lz[j] != 0 ? x[j] : 0;
      m /= kept;
      for (int j = 0; j < LC; j++)
        v += !lz || lz[j] != 0 ? (x[j] - m) * (x[j] - m) : 0;
      v /= kept;
      for (int j = 0; j < LC; j++)
        out[r * LC + j] = !lz || lz[j] != 0
          ? (x[j] - m) / sqrt (v + 1e-12) * lw[j] + lb[j] : x[j];
    }
}

static double
loss_layernorm (void)
{
  double out[LR * LC];
  ref_layernorm (out);
  return dot (out, W, LR * LC);
}

static void
test_layernorm (void)
{
  lx = drand_array (LR * LC, 2);
  lw = drand_array (LC, 1);
  lb = drand_array (LC, 1);
  W = drand_array (LR * LC, 1);
  float *fx = to_float (lx, LR * LC), *fw = to_float (lw, LC);
  float *fb = to_float (lb, LC), *fW = to_float (W, LR * LC);
  float out[LR * LC], mean[LR], rstd[LR];
  double ref[LR * LC];
  pmx_layernorm_fwd (NULL, out, mean, rstd, fx, fw, fb, LR, LC, 1e-12f);
  ref_layernorm (ref);
  check_forward ("layernorm", out, ref, LR * LC);
  float *dx = fzeros (LR * LC), *dw = fzeros (LC), *db = fzeros (LC);
  pmx_layernorm_bwd (NULL, dx, dw, db, fW, fx, fw, mean, rstd, LR, LC);
  ref_loss = loss_layernorm;
  check_grad ("layernorm input", lx, dx, LR * LC);
  check_grad ("layernorm weight", lw, dw, LC);
  check_grad ("layernorm bias", lb, db, LC);
  free (lx); free (lw); free (lb); free (W);
  free (fx); free (fw); free (fb); free (fW); free (dx); free (dw); free (db);
}

static void
test_layernorm_z (void)
{
  static const float z[LC] = { 0.5f, 0, 1, 0.25f, 0, 0, 0.9f, 1, 0.1f };
  lz = z;
  lx = drand_array (LR * LC, 2);
  lw = drand_array (LC, 1);
  lb = drand_array (LC, 1);
  W = drand_array (LR * LC, 1);
  float *fx = to_float (lx, LR * LC), *fw = to_float (lw, LC);
  float *fb = to_float (lb, LC), *fW = to_float (W, LR * LC);
  float out[LR * LC], mean[LR], rstd[LR];
  double ref[LR * LC];
  pmx_layernorm_z_fwd (NULL, out, mean, rstd, fx, fw, fb, z, LR, LC, 1e-12f);
  ref_layernorm (ref);
  check_forward ("layernorm_z", out, ref, LR * LC);
  float *dx = fzeros (LR * LC), *dw = fzeros (LC), *db = fzeros (LC);
  pmx_layernorm_z_bwd (NULL, dx, dw, db, fW, fx, fw, z, mean, rstd, LR, LC);
  ref_loss = loss_layernorm;
  check_grad ("layernorm_z input", lx, dx, LR * LC);
  check_grad ("layernorm_z weight", lw, dw, LC);
  check_grad ("layernorm_z bias", lb, db, LC);
  /* All kept: pmx_layernorm_fwd's results, bit for bit.  */
  static const float ones[LC] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
  float o1[LR * LC], o2[LR * LC];
  pmx_layernorm_z_fwd (NULL, o1, mean, rstd, fx, fw, fb, ones, LR, LC, 1e-12f);
  pmx_layernorm_fwd (NULL, o2, mean, rstd, fx, fw, fb, LR, LC, 1e-12f);
  if (memcmp (o1, o2, sizeof o1))
    {
      printf ("FAIL layernorm_z with all z != 0 differs from layernorm\n");
      failures++;
    }
  lz = NULL;
  free (lx); free (lw); free (lb); free (W);
  free (fx); free (fw); free (fb); free (fW); free (dx); free (dw); free (db);
}

/* ---- Linear ------------------------------------------------------------- */

enum { MR = 5, MI = 7, MO = 3 };
static double *lin_x, *lin_w, *lin_b;

static void
ref_linear (double *out)
{
  for (int r = 0; r < MR; r++)
    for (int o = 0; o < MO; o++)
      out[r * MO + o] = lin_b[o] + dot (lin_x + r * MI, lin_w + o * MI, MI);
}

static double
loss_linear (void)
{
  double out[MR * MO];
  ref_linear (out);
  return dot (out, W, MR * MO);
}

static void
test_linear (void)
{
  lin_x = drand_array (MR * MI, 1);
  lin_w = drand_array (MO * MI, 1);
  lin_b = drand_array (MO, 1);
  W = drand_array (MR * MO, 1);
  float *fx = to_float (lin_x, MR * MI), *fw = to_float (lin_w, MO * MI);
  float *fb = to_float (lin_b, MO), *fW = to_float (W, MR * MO);
  float out[MR * MO];
  double ref[MR * MO];
  pmx_linear_fwd (NULL, out, fx, fw, fb, MR, MI, MO);
  ref_linear (ref);
  check_forward ("linear", out, ref, MR * MO);
  float *dx = fzeros (MR * MI), *dw = fzeros (MO * MI), *db = fzeros (MO);
  pmx_linear_bwd (NULL, dx, dw, db, fW, fx, fw, MR, MI, MO);
  ref_loss = loss_linear;
  check_grad ("linear input", lin_x, dx, MR * MI);
  check_grad ("linear weight", lin_w, dw, MO * MI);
  check_grad ("linear bias", lin_b, db, MO);
  free (lin_x); free (lin_w); free (lin_b); free (W);
  free (fx); free (fw); free (fb); free (fW); free (dx); free (dw); free (db);
}

/* ---- GELU --------------------------------------------------------------- */

enum { GN = 41 };
static double *gx;

static double
loss_gelu (void)
{
  double s = 0;
  for (int i = 0; i < GN; i++)
    s += 0.5 * gx[i] * (1 + erf (gx[i] / sqrt (2.0))) * W[i];
  return s;
}

static void
test_gelu (void)
{
  gx = drand_array (GN, 4);
  W = drand_array (GN, 1);
  float *fx = to_float (gx, GN), *fW = to_float (W, GN);
  float out[GN];
  double ref[GN];
  pmx_gelu_fwd (out, fx, GN);
  for (int i = 0; i < GN; i++)
    ref[i] = 0.5 * fx[i] * (1 + erf (fx[i] / sqrt (2.0)));
  check_forward ("gelu", out, ref, GN);
  float *dx = fzeros (GN);
  pmx_gelu_bwd (dx, fx, fW, GN);
  ref_loss = loss_gelu;
  check_grad ("gelu input", gx, dx, GN);
  free (gx); free (W); free (fx); free (fW); free (dx);
}

/* ---- The fused FFN input: gelu (inp W^T + b) -------------------------- */

static double
loss_linear_gelu (void)
{
  double pre[MR * MO], s = 0;
  ref_linear (pre);
  for (int i = 0; i < MR * MO; i++)
    s += 0.5 * pre[i] * (1 + erf (pre[i] / sqrt (2.0))) * W[i];
  return s;
}

static void
test_linear_gelu (void)
{
  lin_x = drand_array (MR * MI, 1.5);
  lin_w = drand_array (MO * MI, 1);
  lin_b = drand_array (MO, 1);
  W = drand_array (MR * MO, 1);
  float *fx = to_float (lin_x, MR * MI), *fw = to_float (lin_w, MO * MI);
  float *fb = to_float (lin_b, MO), *fW = to_float (W, MR * MO);
  float pre[MR * MO], out[MR * MO];
  double ref[MR * MO];
  pmx_linear_gelu_fwd (NULL, pre, out, fx, fw, fb, MR, MI, MO);
  ref_linear (ref);
  for (int i = 0; i < MR * MO; i++)
    ref[i] = 0.5 * ref[i] * (1 + erf (ref[i] / sqrt (2.0)));
  check_forward ("linear+gelu", out, ref, MR * MO);
  /* backward: the GELU from out, then the linear layer */
  float dpre[MR * MO];
  memset (dpre, 0, sizeof dpre);
  pmx_gelu_bwd_out (NULL, dpre, pre, out, fW, MR * MO);
  float *dx = fzeros (MR * MI), *dw = fzeros (MO * MI), *db = fzeros (MO);
  pmx_linear_bwd (NULL, dx, dw, db, dpre, fx, fw, MR, MI, MO);
  ref_loss = loss_linear_gelu;
  check_grad ("linear+gelu input", lin_x, dx, MR * MI);
  check_grad ("linear+gelu weight", lin_w, dw, MO * MI);
  check_grad ("linear+gelu bias", lin_b, db, MO);
  /* Phi from out near 0 and far below 0 */
  float x[4] = { 0.0f, 1e-3f, -12.0f, 30.0f }, o[4], d[4] = { 0 };
  float one[4] = { 1, 1, 1, 1 };
  pmx_gelu_fwd (o, x, 4);
  pmx_gelu_bwd_out (NULL, d, x, o, one, 4);
  double want[4];
  for (int i = 0; i < 4; i++)
    {
      want[i] = 0.5 * (1 + erf (x[i] / sqrt (2.0)))
        + x[i] * exp (-0.5 * x[i] * x[i]) / sqrt (2 * M_PI);
      if (!(fabs (d[i] - want[i]) <= 1e-5))
        {
          printf ("FAIL gelu derivative at %g: %.9g, reference %.9g\n", x[i],
                  d[i], want[i]);
          failures++;
        }
    }
  free (lin_x); free (lin_w); free (lin_b); free (W);
  free (fx); free (fw); free (fb); free (fW); free (dx); free (dw); free (db);
}

/* ---- Attention ---------------------------------------------------------- */

enum { AB = 2, AT = 4, ANH = 2, AHD = 3, AC = ANH * AHD };
static double *aq, *ak, *av;
static const int32_t alen[AB] = { 4, 2 };
static const int32_t *alen_use;

static void
ref_attention (double *out)
{
  for (int b = 0; b < AB; b++)
    for (int h = 0; h < ANH; h++)
      for (int i = 0; i < AT; i++)
        {
          int len = alen_use ? alen_use[b] : AT;
          double s[AT], mx = -1e300, sum = 0;
          for (int j = 0; j < len; j++)
            {
              s[j] = dot (aq + (b * AT + i) * AC + h * AHD,
                          ak + (b * AT + j) * AC + h * AHD, AHD) / sqrt (AHD);
              mx = s[j] > mx ? s[j] : mx;
            }
          for (int j = 0; j < len; j++)
            sum += (s[j] = exp (s[j] - mx));
          for (int d = 0; d < AHD; d++)
            {
              double o = 0;
              for (int j = 0; j < len; j++)
                o += s[j] / sum * av[(b * AT + j) * AC + h * AHD + d];
              out[(b * AT + i) * AC + h * AHD + d] = o;
            }
        }
}

static double
loss_attention (void)
{
  double out[AB * AT * AC];
  ref_attention (out);
  return dot (out, W, AB * AT * AC);
}

/* The gradients DQ, DK, DV against central differences of
   loss_attention, named WHAT, then PART.  */
static void
check_qkv (const char *what, const char *part, const float *dq, const float *dk,
           const float *dv, int n)
{
  double *x[3] = { aq, ak, av };
  const float *g[3] = { dq, dk, dv };
  char name[64];
  ref_loss = loss_attention;
  for (int i = 0; i < 3; i++)
    {
      snprintf (name, sizeof name, "%s%s %c", what, part, "qkv"[i]);
      check_grad (name, x[i], g[i], n);
    }
}

static void
test_attention (const int32_t *lengths, const char *what)
{
  int n = AB * AT * AC;
  alen_use = lengths;
  aq = drand_array (n, 1.5);
  ak = drand_array (n, 1.5);
  av = drand_array (n, 1);
  W = drand_array (n, 1);
  float *fq = to_float (aq, n), *fk = to_float (ak, n), *fv = to_float (av, n);
  float *fW = to_float (W, n);
  float out[AB * AT * AC], att[AB * ANH * AT * AT], scratch[AT * AT];
  double ref[AB * AT * AC];
  pmx_attention_fwd (NULL, out, att, fq, fk, fv, lengths, AB, AT, AT, ANH, AHD);
  ref_attention (ref);
  check_forward (what, out, ref, n);
  float *dq = fzeros (n), *dk = fzeros (n), *dv = fzeros (n);
  pmx_attention_bwd (NULL, dq, dk, dv, scratch, fW, att, fq, fk, fv, AB, AT, AT, ANH,
                     AHD);
  check_qkv (what, "", dq, dk, dv, n);

  /* Position 0 alone querying (TQ = 1, the last layer under
     head_rows_only): rows 0 of the whole output, and for a loss on those
     rows the whole gradients.  */
  float q0[AB * AC], out0[AB * AC], att0[AB * ANH * AT], dout0[AB * AC];
  float dq0[AB * AC] = { 0 };
  double ref0[AB * AC];
  for (int i = 0; i < n; i++)
    if (i / AC % AT)
      W[i] = fW[i] = 0;
  for (int b = 0; b < AB; b++)
    for (int c = 0; c < AC; c++)
      {
        q0[b * AC + c] = fq[b * AT * AC + c];
        dout0[b * AC + c] = fW[b * AT * AC + c];
        ref0[b * AC + c] = ref[b * AT * AC + c];
      }
  pmx_attention_fwd (NULL, out0, att0, q0, fk, fv, lengths, AB, AT, 1, ANH, AHD);
  char name[64];
  snprintf (name, sizeof name, "%s, position 0", what);
  check_forward (name, out0, ref0, AB * AC);
  memset (dq, 0, n * sizeof *dq);
  memset (dk, 0, n * sizeof *dk);
  memset (dv, 0, n * sizeof *dv);
  pmx_attention_bwd (NULL, dq0, dk, dv, scratch, dout0, att0, q0, fk, fv, AB, AT, 1,
                     ANH, AHD);
  for (int b = 0; b < AB; b++)
    memcpy (dq + b * AT * AC, dq0 + b * AC, AC * sizeof *dq);
  check_qkv (what, ", position 0", dq, dk, dv, n);
  free (aq); free (ak); free (av); free (W);
  free (fq); free (fk); free (fv); free (fW); free (dq); free (dk); free (dv);
}

/* ---- Softmax cross-entropy --------------------------------------------- */

enum { XR = 5, XC = 6 };
static double *xl;
static const int32_t xt[XR] = { 2, -1, 0, 5, 3 };

static double
loss_xent (void)
{
  double s = 0;
  for (int r = 0; r < XR; r++)
    {
      if (xt[r] < 0)
        continue;
      double mx = -1e300, sum = 0;
      for (int j = 0; j < XC; j++)
        mx = xl[r * XC + j] > mx ? xl[r * XC + j] : mx;
      for (int j = 0; j < XC; j++)
        sum += exp (xl[r * XC + j] - mx);
      s += log (sum) + mx - xl[r * XC + xt[r]];
    }
  return s / 4;                 /* mean over the 4 counted rows */
}

static void
test_xent (void)
{
  xl = drand_array (XR * XC, 3);
  float *fl = to_float (xl, XR * XC), probs[XR * XC];
  int count;
  double loss = pmx_softmax_xent_fwd (probs, fl, xt, XR, XC, &count);
  if (count != 4 || fabs (loss / count - loss_xent ()) > 1e-5)
    {
      printf ("FAIL cross-entropy forward: %g (%d rows), reference %g\n",
              loss / count, count, loss_xent ());
      failures++;
    }
  float *dl = fzeros (XR * XC);
  pmx_softmax_xent_bwd (dl, probs, xt, XR, XC, 1.0f / count);
  ref_loss = loss_xent;
  check_grad ("cross-entropy logits", xl, dl, XR * XC);
  free (xl); free (fl); free (dl);
}

/* ---- Multiplexer and concatenation ------------------------------------- */

enum { UG = 2, UN = 3, UT = 2, UH = 4 };
static double *ux, *ukeys;

static void
ref_mux (double *out)
{
  for (int g = 0; g < UG; g++)
    for (int t = 0; t < UT; t++)
      for (int j = 0; j < UH; j++)
        {
          double s = 0;
          for (int i = 0; i < UN; i++)
            s += ux[((g * UN + i) * UT + t) * UH + j] * ukeys[i * UH + j];
          out[(g * UT + t) * UH + j] = s / UN;
        }
}

static double
loss_mux (void)
{
  double out[UG * UT * UH];
  ref_mux (out);
  return dot (out, W, UG * UT * UH);
}

static void
test_mux (void)
{
  int n = UG * UN * UT * UH, m = UG * UT * UH;
  ux = drand_array (n, 1);
  ukeys = drand_array (UN * UH, 1);
  W = drand_array (m, 1);
  float *fx = to_float (ux, n), *fk = to_float (ukeys, UN * UH);
  float *fW = to_float (W, m), out[UG * UT * UH];
  double ref[UG * UT * UH];
  pmx_mux_fwd (out, fx, fk, UG, UN, UT, UH);
  ref_mux (ref);
  check_forward ("mux", out, ref, m);
  float *dx = fzeros (n);
  pmx_mux_bwd (dx, fW, fk, UG, UN, UT, UH);
  ref_loss = loss_mux;
  check_grad ("mux input", ux, dx, n);
  free (ux); free (ukeys); free (W); free (fx); free (fk); free (fW); free (dx);
}

enum { CR = 5, CN = 3, CH = 4, CS = 2 };
static double *ce, *ch;
static const int32_t cinst[CR] = { 0, 1, 2, 0, 1 }, csrc[CR] = { 0, 0, 0, 1, 1 };

static double
loss_concat (void)
{
  double s = 0;
  for (int r = 0; r < CR; r++)
    for (int j = 0; j < CH; j++)
      s += ce[cinst[r] * CH + j] * W[r * 2 * CH + j]
        + ch[csrc[r] * CH + j] * W[r * 2 * CH + CH + j];
  return s;
}

static void
test_concat (void)
{
  ce = drand_array (CN * CH, 1);
  ch = drand_array (CS * CH, 1);
  W = drand_array (CR * 2 * CH, 1);
  float *fe = to_float (ce, CN * CH), *fh = to_float (ch, CS * CH);
  float *fW = to_float (W, CR * 2 * CH), out[CR * 2 * CH];
  pmx_concat_fwd (out, fe, cinst, fh, csrc, CR, CH);
  for (int r = 0; r < CR; r++)
    if (out[r * 2 * CH] != fe[cinst[r] * CH]
        || out[r * 2 * CH + CH + 1] != fh[csrc[r] * CH + 1])
      {
        printf ("FAIL concat forward row %d\n", r);
        failures++;
      }
  float *de = fzeros (CN * CH), *dh = fzeros (CS * CH);
  pmx_concat_bwd (de, dh, fW, cinst, csrc, CR, CH);
  ref_loss = loss_concat;
  check_grad ("demux concat e", ce, de, CN * CH);
  check_grad ("demux concat h", ch, dh, CS * CH);
  free (ce); free (ch); free (W); free (fe); free (fh); free (fW);
  free (de); free (dh);
}

/* ---- Dropout ------------------------------------------------------------ */

static float *frand_array (size_t n, unsigned seed);

static void
test_dropout (void)
{
  enum { n = 100000 };
  float *a = malloc (n * sizeof *a), *b = malloc (n * sizeof *b);
  pmx_dropout_mask (a, n, 0.1f, 7, 3, 0);
  pmx_dropout_mask (b, n, 0.1f, 7, 3, 0);
  int zeros = 0, bad = 0;
  for (int i = 0; i < n; i++)
    {
      zeros += a[i] == 0;
      bad += a[i] != b[i] || (a[i] != 0 && fabsf (a[i] - 1 / 0.9f) > 1e-6f);
    }
  /* Binomial(1e5, 0.1): sd 95, so +-500 is over 5 sd.  */
  if (bad || abs (zeros - n / 10) > 500)
    {
      printf ("FAIL dropout: %d zeros of %d, %d bad values\n", zeros, n, bad);
      failures++;
    }
  pmx_dropout_mask (b, n, 0.1f, 7, 4, 0);
  if (!memcmp (a, b, n * sizeof *a))
    {
      printf ("FAIL dropout: streams 3 and 4 give the same mask\n");
      failures++;
    }
  /* A part drawn on its own is the whole's slice.  */
  else if (pmx_dropout_mask (b, 1000, 0.1f, 7, 3, 4321),
           memcmp (a + 4321, b, 1000 * sizeof *a))
    {
      printf ("FAIL dropout: elements 4321.. drawn alone differ from the whole's\n");
      failures++;
    }
  else
    printf ("ok   dropout                      %d zeros of %d\n", zeros, n);
  /* pmx_dropout_fwd and _bwd: the mask and products of pmx_dropout_mask
     and pmx_mul, with no pool and on 2 threads, from an offset.  */
  pmx_par *par = pmx_par_new (2);
  float *x = frand_array (n, 40), *want = malloc (n * sizeof *want);
  float *got = malloc (n * sizeof *got), *mask = malloc (n * sizeof *mask);
  if (!par || !want || !got || !mask)
    exit (99);
  for (int t = 0; t < 2; t++)
    {
      const pmx_par *p = t ? par : NULL;
      pmx_dropout_mask (a, n - 7, 0.25f, 9, 5, 77);
      memcpy (want, x, n * sizeof *x);
      pmx_mul (want, a, n - 7);
      memcpy (got, x, n * sizeof *x);
      pmx_dropout_fwd (p, got, mask, n - 7, 0.25f, 9, 5, 77);
      int fwd_ok = !memcmp (mask, a, (n - 7) * sizeof *a)
        && !memcmp (got, want, n * sizeof *got);
      pmx_mul (want, a, n - 7);
      pmx_dropout_bwd (p, got, mask, n - 7);
      if (!fwd_ok || memcmp (got, want, n * sizeof *got))
        {
          printf ("FAIL dropout_%s on %s differs from the mask and pmx_mul\n",
                  fwd_ok ? "bwd" : "fwd", t ? "2 threads" : "no pool");
          failures++;
        }
    }
  free (x); free (want); free (got); free (mask);
  pmx_par_free (par);
  free (a); free (b);
}

/* ---- On a pool --------------------------------------------------------

   The row-wise passes and column sums that run on a pool's threads
   (LayerNorm, plain and under a mask; the linear layers' bias, GELU
   epilogue and bias gradient), on 2 threads against none: the same bits,
   on shapes of several row and column blocks.  */

static float *
frand_array (size_t n, unsigned seed)
{
  float *x = malloc (n * sizeof *x);
  if (!x)
    exit (99);
  for (size_t i = 0; i < n; i++)
    {
      seed = seed * 1103515245u + 12345u;
      x[i] = (float) ((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
  return x;
}

static int
same (const char *what, const float *a, const float *b, size_t n)
{
  if (!memcmp (a, b, n * sizeof *a))
    return 1;
  printf ("FAIL %s on 2 threads differs from one\n", what);
  failures++;
  return 0;
}

static void
test_par (void)
{
  enum { R = 333, C = 100, F = 150 };
  pmx_par *par = pmx_par_new (2);
  if (!par)
    {
      printf ("FAIL pmx_par_new: %s\n", pmx_errmsg ());
      failures++;
      return;
    }
  float *x = frand_array (R * C, 1), *d = frand_array (R * C, 2);
  float *w = frand_array (C, 3), *b = frand_array (C, 4), *z = frand_array (C, 5);
  float *fw = frand_array (F * C, 6), *fb = frand_array (F, 7);
  float *dl = frand_array (R * F, 8);
  for (int j = 0; j < C; j += 3)
    z[j] = 0;
  int ok = 1;
  for (int masked = 0; masked < 2; masked++)
    {
      float *o[2], *mean[2], *rstd[2], *dx[2], *dw[2], *db[2];
      for (int t = 0; t < 2; t++)
        {
          const pmx_par *p = t ? par : NULL;
          o[t] = malloc (R * C * sizeof (float));
          mean[t] = malloc (R * sizeof (float));
          rstd[t] = malloc (R * sizeof (float));
          dx[t] = frand_array (R * C, 9);
          dw[t] = frand_array (C, 10);
          db[t] = frand_array (C, 11);
          if (!o[t] || !mean[t] || !rstd[t])
            exit (99);
          pmx_layernorm_z_fwd (p, o[t], mean[t], rstd[t], x, w, b, masked ? z : NULL,
                               R, C, 1e-12f);
          pmx_layernorm_z_bwd (p, dx[t], dw[t], db[t], d, x, w, masked ? z : NULL,
                               mean[t], rstd[t], R, C);
        }
      ok &= same ("layernorm", o[0], o[1], R * C)
        && same ("layernorm mean", mean[0], mean[1], R)
        && same ("layernorm rstd", rstd[0], rstd[1], R)
        && same ("layernorm input gradient", dx[0], dx[1], R * C)
        && same ("layernorm weight gradient", dw[0], dw[1], C)
        && same ("layernorm bias gradient", db[0], db[1], C);
      for (int t = 0; t < 2; t++)
        {
          free (o[t]); free (mean[t]); free (rstd[t]);
          free (dx[t]); free (dw[t]); free (db[t]);
        }
    }
  float *out[2], *pre[2], *gb[2];
  for (int t = 0; t < 2; t++)
    {
      const pmx_par *p = t ? par : NULL;
      out[t] = malloc (R * F * sizeof (float));
      pre[t] = malloc (R * F * sizeof (float));
      gb[t] = frand_array (F, 12);
      if (!out[t] || !pre[t])
        exit (99);
      pmx_linear_gelu_fwd (p, pre[t], out[t], x, fw, fb, R, C, F);
      pmx_linear_bwd (p, NULL, NULL, gb[t], dl, x, fw, R, C, F);
    }
  ok &= same ("linear_gelu pre", pre[0], pre[1], R * F)
    && same ("linear_gelu", out[0], out[1], R * F)
    && same ("linear bias gradient", gb[0], gb[1], F);
  for (int t = 0; t < 2; t++)
    {
      const pmx_par *p = t ? par : NULL;
      pmx_linear_fwd (p, out[t], x, fw, fb, R, C, F);
    }
  ok &= same ("linear", out[0], out[1], R * F);
  if (ok)
    printf ("ok   2 threads                    the bits of one\n");
  for (int t = 0; t < 2; t++)
    {
      free (out[t]); free (pre[t]); free (gb[t]);
    }
  free (x); free (d); free (w); free (b); free (z); free (fw); free (fb); free (dl);
  pmx_par_free (par);
}

/* Each _to form writes what zeroing the gradient and accumulating gives
   (the same values; NaN in the buffer beforehand shows any read of it),
   on no pool and on 2 threads; and the kernels behind the one-pass
   forms give the bits of the passes they replace.  */
static int
same_values (const char *what, const float *a, const float *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!(a[i] == b[i]))
      {
        printf ("FAIL %s: element %zu is %g, accumulating gives %g\n", what, i, a[i],
                b[i]);
        failures++;
        return 0;
      }
  return 1;
}

static float *
nans (size_t n)
{
  float *x = malloc (n * sizeof *x);
  if (!x)
    exit (99);
  for (size_t i = 0; i < n; i++)
    x[i] = NAN;
  return x;
}

static void
test_to_forms (void)
{
  enum { R = 70, C = 48, F = 80, B = 2, T = 9, NH = 3, HD = 4 };
  pmx_par *par = pmx_par_new (2);
  if (!par)
    exit (99);
  float *x = frand_array (R * C, 21), *d = frand_array (R * C, 22);
  float *w = frand_array (C, 23), *b = frand_array (C, 24), *z = frand_array (C, 25);
  float *fw = frand_array (F * C, 26), *dl = frand_array (R * F, 27);
  float *pre = frand_array (R * F, 28), *out = malloc (R * F * sizeof (float));
  float *mean = malloc (R * sizeof (float)), *rstd = malloc (R * sizeof (float));
  if (!out || !mean || !rstd)
    exit (99);
  for (int j = 0; j < C; j += 4)
    z[j] = 0;
  pmx_gelu_fwd (out, pre, R * F);
  int ok = 1;
  for (int t = 0; t < 2; t++)
    {
      const pmx_par *p = t ? par : NULL;
      for (int masked = 0; masked < 2; masked++)
        {
          const float *zz = masked ? z : NULL;
          float *o = malloc (R * C * sizeof (float));
          float *acc = fzeros (R * C), *to = nans (R * C);
          float *dw = fzeros (C), *db = fzeros (C);
          if (!o)
            exit (99);
          pmx_layernorm_z_fwd (p, o, mean, rstd, x, w, b, zz, R, C, 1e-12f);
          pmx_layernorm_z_bwd (p, acc, dw, db, d, x, w, zz, mean, rstd, R, C);
          if (masked)
            pmx_layernorm_z_bwd_to (p, to, dw, db, d, x, w, zz, mean, rstd, R, C);
          else
            pmx_layernorm_bwd_to (p, to, dw, db, d, x, w, mean, rstd, R, C);
          ok &= same_values (masked ? "layernorm_z_bwd_to" : "layernorm_bwd_to", to,
                             acc, R * C);
          free (o); free (acc); free (to); free (dw); free (db);
        }
      float *acc = fzeros (R * C), *to = nans (R * C);
      float *dw = fzeros (F * C), *db = fzeros (F);
      pmx_linear_bwd (p, acc, dw, db, dl, x, fw, R, C, F);
      pmx_linear_bwd_to (p, to, dw, db, dl, x, fw, R, C, F);
      ok &= same_values ("linear_bwd_to", to, acc, R * C);
      free (to);
      to = nans (R * C);
      pmx_linear_bwd_to (p, to, NULL, NULL, dl, x, fw, R, C, 0);
      for (int i = 0; i < R * C; i++)
        acc[i] = 0;
      ok &= same_values ("linear_bwd_to of no outputs", to, acc, R * C);
      free (acc); free (to); free (dw); free (db);
      acc = fzeros (R * F);
      to = nans (R * F);
      pmx_gelu_bwd_out (p, acc, pre, out, dl, R * F);
      pmx_gelu_bwd_out_to (p, to, pre, out, dl, R * F);
      ok &= same_values ("gelu_bwd_out_to", to, acc, R * F);
      free (acc); free (to);
      for (int tq = 1; tq <= T; tq += T - 1)
        {
          size_t nk = (size_t) B * T * NH * HD, nq = (size_t) B * tq * NH * HD;
          float *q = frand_array (nq, 30), *k = frand_array (nk, 31);
          float *v = frand_array (nk, 32), *dout = frand_array (nq, 33);
          float *ctx = malloc (nq * sizeof (float));
          float *att = malloc ((size_t) B * NH * tq * T * sizeof (float));
          float *scratch = malloc ((size_t) 2 * tq * T * sizeof (float));
          float *g[2][3];
          if (!ctx || !att || !scratch)
            exit (99);
          pmx_attention_fwd (p, ctx, att, q, k, v, NULL, B, T, tq, NH, HD);
          for (int f = 0; f < 2; f++)
            {
              g[f][0] = f ? nans (nq) : fzeros (nq);
              g[f][1] = f ? nans (nk) : fzeros (nk);
              g[f][2] = f ? nans (nk) : fzeros (nk);
              (f ? pmx_attention_bwd_to : pmx_attention_bwd)
                (p, g[f][0], g[f][1], g[f][2], scratch, dout, att, q, k, v, B, T, tq,
                 NH, HD);
            }
          ok &= same_values ("attention_bwd_to dq", g[1][0], g[0][0], nq)
            && same_values ("attention_bwd_to dk", g[1][1], g[0][1], nk)
            && same_values ("attention_bwd_to dv", g[1][2], g[0][2], nk);
          for (int f = 0; f < 2; f++)
            for (int i = 0; i < 3; i++)
              free (g[f][i]);
          free (q); free (k); free (v); free (dout); free (ctx); free (att);
          free (scratch);
        }
    }
  /* pmx_bias_gelu_keep: pmx_bias_gelu's bits, and the sum it kept.  */
  float *g1 = malloc (R * F * sizeof (float)), *g2 = malloc (R * F * sizeof (float));
  float *kept = malloc (R * F * sizeof (float));
  if (!g1 || !g2 || !kept)
    exit (99);
  memcpy (g1, dl, R * F * sizeof (float));
  memcpy (g2, dl, R * F * sizeof (float));
  pmx_bias_gelu (g1, F, pre, R, F);
  pmx_bias_gelu_keep (g2, kept, F, pre, R, F);
  int keep_ok = !memcmp (g1, g2, R * F * sizeof (float));
  for (int i = 0; i < R * F && keep_ok; i++)
    keep_ok = kept[i] == dl[i] + pre[i % F];
  if (!keep_ok)
    {
      printf ("FAIL pmx_bias_gelu_keep is not pmx_bias_gelu with its input\n");
      failures++;
    }
  /* pmx_colsum_acc: a column at a time, in row order.  */
  float ys[F], yk[F];
  for (int j = 0; j < F; j++)
    ys[j] = yk[j] = pre[j];
  for (int r = 0; r < R; r++)
    for (int j = 5; j < 61; j++)
      ys[j] += dl[r * F + j];
  pmx_colsum_acc (yk, dl, F, R, 5, 61);
  if (memcmp (ys, yk, sizeof ys))
    {
      printf ("FAIL pmx_colsum_acc differs from the column sums in row order\n");
      failures++;
      keep_ok = 0;
    }
  /* pmx_colsum_prod: each column's products in double, in row order;
     pmx_mul_cols, in place too: x s hz[j].  */
  double cs[F], ck[F];
  for (int j = 0; j < F; j++)
    cs[j] = ck[j] = pre[j];
  for (int r = 0; r < R; r++)
    for (int j = 3; j < 50; j++)
      cs[j] += (double) dl[r * F + j] * g1[r * F + j];
  pmx_colsum_prod (ck, dl, g1, F, R, 3, 50);
  memcpy (g2, dl, R * F * sizeof (float));
  pmx_mul_cols (kept, dl, pre, 0.3f, R, F);
  pmx_mul_cols (g2, g2, pre, 0.3f, R, F);
  int cols_ok = !memcmp (cs, ck, sizeof cs)
    && !memcmp (kept, g2, R * F * sizeof (float));
  for (int i = 0; i < R * F && cols_ok; i++)
    cols_ok = kept[i] == dl[i] * 0.3f * pre[i % F];
  if (!cols_ok)
    {
      printf ("FAIL pmx_colsum_prod or pmx_mul_cols: not the loops' bits\n");
      failures++;
      keep_ok = 0;
    }
  if (ok && keep_ok)
    printf ("ok   _to forms                    accumulating's values, one pass\n");
  free (g1); free (g2); free (kept);
  free (x); free (d); free (w); free (b); free (z); free (fw); free (dl); free (pre);
  free (out); free (mean); free (rstd);
  pmx_par_free (par);
}

int
main (void)
{
  test_embed ();
  test_layernorm ();
  test_layernorm_z ();
  test_linear ();
  test_gelu ();
  test_linear_gelu ();
  test_attention (NULL, "attention");
  test_attention (alen, "attention masked");
  test_xent ();
  test_mux ();
  test_concat ();
  test_dropout ();
  test_par ();
  test_to_forms ();
  return failures ? 1 : 0;
}
