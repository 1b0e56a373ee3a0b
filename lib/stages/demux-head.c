/* demux-head.c -- the index_pos classification head, forward and backward
   (demux-head.h).  */

#include <config.h>
#include "demux-head.h"
#include "gemm.h"
#include "kernels.h"
#include "train-ops.h"

#include <string.h>

/* Y (M, OUT) = X (M, IN) W^T + B, the bias added after the product (the
   order inference has always used, so its bits stay).  */
static void
linear_fwd (const pmx_demux_head *hd, const pmx_packed *pw, const float *w,
            const float *b, int in, int out, const float *x, int M, float *y)
{
  if (M <= 0)
    return;
  pmx_sgemm_rows_packed (pw, w, in, out, in, x, in, y, out, M, hd->scratch);
  for (int m = 0; m < M; m++)
    for (int o = 0; o < out; o++)
      y[(size_t) m * out + o] += b[o];
}

void
pmx_demux_head_inst (const pmx_demux_head *hd, float *C)
{
  int N = hd->N, H = hd->H, D = hd->D;
  pmx_sgemm (0, 1, N, D, H, 1.0f, hd->inst, H, hd->w[0], 2 * H, 0.0f, C, D,
             NULL);
  for (int i = 0; i < N; i++)
    for (int o = 0; o < D; o++)
      C[(size_t) i * D + o] += hd->b[0][o];
}

void
pmx_demux_head_fwd (const pmx_demux_head *hd, const float *C, const float *X,
                    int ldx, int G, float *U, float *out,
                    const pmx_demux_head_act *act)
{
  int N = hd->N, H = hd->H, D = hd->D;
  size_t B = (size_t) G * N, n = B * D;
  /* U (G, D) = W1[:, H:] h_g; z1 = gelu (U[g] + C[i]).  */
  pmx_sgemm_rows_packed (hd->pw_h, hd->w[0] + H, 2 * H, D, H, X, ldx, U, D, G,
                         hd->scratch);
  float *z = act ? act->z[0] : out;
  for (int g = 0; g < G; g++)
    for (int i = 0; i < N; i++)
      {
        size_t r = (size_t) g * N + i;
        const float *u = U + (size_t) g * D, *c = C + (size_t) i * D;
        float *a = act ? act->pre[0] + r * D : NULL, *zr = z + r * D;
        for (int o = 0; o < D; o++)
          {
            float s = u[o] + c[o];
            if (a)
              a[o] = s;
            zr[o] = pmx_gelu_erf (s);
          }
      }
  /* z += gelu (dense_k z).  */
  for (int k = 1; k < hd->ndense; k++)
    {
      float *a = act ? act->pre[k] : U, *zk = act ? act->z[k] : out;
      linear_fwd (hd, hd->pw[k - 1], hd->w[k], hd->b[k], D, D, z, (int) B, a);
      for (size_t j = 0; j < n; j++)
        zk[j] = z[j] + pmx_gelu_erf (a[j]);
      z = zk;
    }
  /* out = z + LN (gelu (pre_decoder z)).  */
  float *p = act ? act->p : U, *pg = act ? act->pg : U, *pl = act ? act->pl : U;
  linear_fwd (hd, hd->pre_pw, hd->pre_w, hd->pre_b, D, D, z, (int) B, p);
  for (size_t j = 0; j < n; j++)
    pg[j] = pmx_gelu_erf (p[j]);
  pmx_layernorm_stats (pl, act ? act->mean : NULL, act ? act->rstd : NULL, pg,
                       hd->ln_w, hd->ln_b, (int) B, D, hd->eps);
  for (size_t j = 0; j < n; j++)
    out[j] = z[j] + pl[j];
}

void
pmx_demux_head_bwd (const pmx_demux_head *hd, const pmx_demux_head_grad *grad,
                    const pmx_demux_head_act *act,
                    const pmx_demux_head_act *dact, const float *X, int ldx,
                    int G, const float *dout, float *dX, float *dC, float *dU)
{
  int N = hd->N, H = hd->H, D = hd->D, L = hd->ndense, B = G * N;
  size_t n = (size_t) B * D;
  /* out = z + LN (gelu (p)), p = pre_decoder z.  */
  float *dz = dact->z[L - 1];
  memcpy (dz, dout, n * sizeof *dz);
  memset (dact->pg, 0, n * sizeof *dz);
  pmx_layernorm_bwd (NULL, dact->pg, grad->ln_w, grad->ln_b, dout, act->pg,
                     hd->ln_w, act->mean, act->rstd, B, D);
  memset (dact->p, 0, n * sizeof *dz);
  pmx_gelu_bwd (dact->p, act->p, dact->pg, (int) n);
  pmx_linear_bwd (NULL, dz, grad->pre_w, grad->pre_b, dact->p, act->z[L - 1],
                  hd->pre_w, B, D, D);
  /* z_k = z_{k-1} + gelu (dense_k z_{k-1}).  */
  for (int k = L - 1; k >= 1; k--)
    {
      memcpy (dact->z[k - 1], dact->z[k], n * sizeof *dz);
      memset (dact->pre[k], 0, n * sizeof *dz);
      pmx_gelu_bwd (dact->pre[k], act->pre[k], dact->z[k], (int) n);
      pmx_linear_bwd (NULL, dact->z[k - 1], grad->w[k], grad->b[k], dact->pre[k],
                      act->z[k - 1], hd->w[k], B, D, D);
    }
  /* z_1 = gelu (U[g] + C[i]): C's gradient sums over groups, U's over
     instances.  */
  float *da = dact->pre[0];
  memset (da, 0, n * sizeof *da);
  pmx_gelu_bwd (da, act->pre[0], dact->z[0], (int) n);
  memset (dC, 0, (size_t) N * D * sizeof *dC);
  memset (dU, 0, (size_t) G * D * sizeof *dU);
  for (int g = 0; g < G; g++)
    for (int i = 0; i < N; i++)
      {
        const float *d = da + ((size_t) g * N + i) * D;
        pmx_add (dC + (size_t) i * D, d, D);
        pmx_add (dU + (size_t) g * D, d, D);
      }
  /* C = W1[:, :H] E + b_1 and U = W1[:, H:] X: dense_1's gradient is
     [dC^T E, dU^T X], its bias's the sum of dC.  */
  for (int i = 0; i < N; i++)
    pmx_add (grad->b[0], dC + (size_t) i * D, D);
  pmx_sgemm (1, 0, D, H, N, 1.0f, dC, D, hd->inst, H, 1.0f, grad->w[0], 2 * H,
             NULL);
  pmx_sgemm (1, 0, D, H, G, 1.0f, dU, D, X, ldx, 1.0f, grad->w[0] + H, 2 * H,
             NULL);
  if (grad->inst)               /* (N, H) += dC (N, D) W1[:, :H] */
    pmx_sgemm (0, 0, N, H, D, 1.0f, dC, D, hd->w[0], 2 * H, 1.0f, grad->inst,
               H, NULL);
  /* dX (G, H) += dU (G, D) W1[:, H:].  */
  pmx_sgemm (0, 0, G, H, D, 1.0f, dU, D, hd->w[0] + H, 2 * H, 1.0f, dX, ldx,
             NULL);
}
