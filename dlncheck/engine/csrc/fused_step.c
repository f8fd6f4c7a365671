/* Fused DLN training steps: the arithmetic of dlncheck.engine._advance_torch in plain C, one row
 * (a (config, run) pair) at a time, all of a segment's steps in one call.
 *
 * Built by dlncheck/fused.py with -DREAL=double or -DREAL=float. Row n is run r = n % runs.
 * Run 0 is GD (Sxx = I, N = 0); SGD run r >= 1 at step s averages the rows idx[s, r - 1, :] of
 * the per-sample table outer (n x cols) into its moments [Sxx | N] (Sxx: d0 x D0, N: dL x D0,
 * row-major with rows padded to D0 columns, the padding zero). Per step, with layers W_l
 * (d_{l+1} x d_l), l = 0..L-1:
 *   P_0 = W_0, P_l = W_l P_{l-1};  E = P_{L-1} - Syx;  residual = ||E||_F;
 *   G = E Sxx - N;  back = G;  for l = L-1..1: below = W_l^T back, W_l -= lr back P_{l-1}^T,
 *   back = below;  W_0 -= lr back.
 * Locally every matrix's rows are padded with zeros to a multiple of the SIMD width V, so each
 * output row is a few vectors accumulated in registers (a zero pad adds exact zeros to every sum).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef REAL real;
#define V ((int64_t)(32 / sizeof(real)))
typedef real vec __attribute__((vector_size(32)));

static inline vec load(const real *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void store(real *p, vec v) { memcpy(p, &v, sizeof v); }
static inline vec splat(real a) { vec v; for (int q = 0; q < V; q++) v[q] = a; return v; }
static inline int64_t padded(int64_t d) { return (d + V - 1) / V * V; }

/* acc[q] = sum_p a[p * sp] B[p, q V : (q + 1) V] for q < nb (B's leading dim ldb); always inlined
 * with a constant nb, so the nb accumulators live in registers as independent chains */
static inline __attribute__((always_inline)) void block(const int nb, int64_t k, const real *a, int64_t sp,
                                                       const real *B, int64_t ldb, vec *acc) {
    for (int q = 0; q < nb; q++) acc[q] = splat(0);
    for (int64_t p = 0; p < k; p++) {
        const vec x = splat(a[p * sp]);
        for (int q = 0; q < nb; q++) acc[q] += x * load(B + p * ldb + q * V);
    }
}

/* C (m x nc) = A B, or C -= lr A B when subtract; A(i, p) = A[i * si + p * sp] (m x k; a transpose
 * is si = 1), B (k x nc), nc a multiple of V. Each entry sums over p in order. */
static void gemm(int64_t m, int64_t k, int64_t nc, const real *A, int64_t si, int64_t sp, const real *B,
                 real *C, int subtract, real lr) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nc; j += 4 * V) {
            const int64_t nb = (nc - j) / V < 4 ? (nc - j) / V : 4;
            vec acc[4];
            const real *a = A + i * si;
            switch (nb) {
                case 1: block(1, k, a, sp, B + j, nc, acc); break;
                case 2: block(2, k, a, sp, B + j, nc, acc); break;
                case 3: block(3, k, a, sp, B + j, nc, acc); break;
                default: block(4, k, a, sp, B + j, nc, acc);
            }
            real *c = C + i * nc + j;
            for (int q = 0; q < nb; q++)
                store(c + q * V, subtract ? load(c + q * V) - splat(lr) * acc[q] : acc[q]);
        }
}

/* moment[c] = mean over b < B of outer[batch[b], c], for cols (a multiple of V) columns; the
 * rows are summed in order b = 0, 1, ..., 4 column vectors at a time held in registers */
static inline __attribute__((always_inline)) void sum_rows(const int nb, const int64_t *batch, int64_t B,
                                                          const real *outer, int64_t cols, vec *acc) {
    for (int q = 0; q < nb; q++) acc[q] = load(outer + batch[0] * cols + q * V);
    for (int64_t b = 1; b < B; b++)
        for (int q = 0; q < nb; q++) acc[q] += load(outer + batch[b] * cols + q * V);
}

static void mean_rows(const int64_t *batch, int64_t B, const real *outer, int64_t cols, real *moment) {
    const vec count = splat((real)B);
    for (int64_t c = 0; c < cols; c += 4 * V) {
        const int64_t nb = (cols - c) / V < 4 ? (cols - c) / V : 4;
        vec acc[4];
        switch (nb) {
            case 1: sum_rows(1, batch, B, outer + c, cols, acc); break;
            case 2: sum_rows(2, batch, B, outer + c, cols, acc); break;
            case 3: sum_rows(3, batch, B, outer + c, cols, acc); break;
            default: sum_rows(4, batch, B, outer + c, cols, acc);
        }
        for (int q = 0; q < nb; q++) store(moment + c + q * V, acc[q] / count);
    }
}

/* Returns 0, or -1 when the workspace cannot be allocated. */
int dln_advance(int L, const int64_t *widths, int64_t rows, int64_t runs, int64_t steps,
                real **W, const real *lr, const int64_t *idx, int64_t B, const real *outer,
                int64_t cols, const real *Syx, real *residual) {
    const int64_t d0 = widths[0], dL = widths[L], D0 = padded(d0);
    int64_t dmax = 0, size = 0;
    for (int l = 0; l <= L; l++) dmax = widths[l] > dmax ? widths[l] : dmax;
    for (int l = 0; l < L; l++) size += widths[l + 1] * (padded(widths[l]) + D0);  /* weights, prefixes */
    size += 4 * padded(dmax) * D0 + cols + dL * D0;
    real *work = malloc(sizeof(real) * padded(size));
    real **P = malloc(sizeof(real *) * 2 * L);
    if (!work || !P) { free(work); free(P); return -1; }
    memset(work, 0, sizeof(real) * padded(size));
    real **w = P + L, *cursor = work;
    for (int l = 0; l < L; l++) { w[l] = cursor; cursor += widths[l + 1] * padded(widths[l]); }
    for (int l = 0; l < L; l++) { P[l] = cursor; cursor += widths[l + 1] * D0; }
    real *E = cursor, *back = E + padded(dmax) * D0, *below = back + padded(dmax) * D0;
    real *transposed = below + padded(dmax) * D0, *moment = transposed + padded(dmax) * D0;
    real *syx = moment + cols;
    for (int64_t i = 0; i < dL; i++) memcpy(syx + i * D0, Syx + i * d0, sizeof(real) * d0);
    const int noisy = cols > d0 * D0;
    for (int64_t n = 0; n < rows; n++) {
        const int64_t r = n % runs;
        for (int l = 0; l < L; l++)         /* this row's weights into the padded workspace */
            for (int64_t i = 0; i < widths[l + 1]; i++)
                memcpy(w[l] + i * padded(widths[l]), W[l] + (n * widths[l + 1] + i) * widths[l],
                       sizeof(real) * widths[l]);
        for (int64_t s = 0; s < steps; s++) {
            memcpy(P[0], w[0], sizeof(real) * widths[1] * D0);
            for (int l = 1; l < L; l++) gemm(widths[l + 1], widths[l], D0, w[l], padded(widths[l]), 1, P[l - 1], P[l], 0, 0);
            vec sq = splat(0);
            for (int64_t i = 0; i < dL * D0; i += V) {
                vec e = load(P[L - 1] + i) - load(syx + i);
                store(E + i, e);
                sq += e * e;
            }
            real norm = 0;
            for (int q = 0; q < V; q++) norm += sq[q];
            residual[s * rows + n] = sqrt(norm);
            if (r == 0) {
                memcpy(back, E, sizeof(real) * dL * D0);
            } else {
                mean_rows(idx + (s * (runs - 1) + r - 1) * B, B, outer, cols, moment);
                gemm(dL, d0, D0, E, D0, 1, moment, back, 0, 0);
                if (noisy)
                    for (int64_t i = 0; i < dL * D0; i++) back[i] -= moment[d0 * D0 + i];
            }
            for (int l = L - 1; l >= 1; l--) {
                const int64_t dl = widths[l], Dl = padded(dl);
                gemm(dl, widths[l + 1], D0, w[l], 1, Dl, back, below, 0, 0);
                for (int64_t p = 0; p < d0; p++)      /* P_{l-1}^T, rows padded to Dl */
                    for (int64_t j = 0; j < Dl; j++) transposed[p * Dl + j] = j < dl ? P[l - 1][j * D0 + p] : 0;
                gemm(widths[l + 1], d0, Dl, back, D0, 1, transposed, w[l], 1, lr[n]);
                real *t = back; back = below; below = t;
            }
            for (int64_t i = 0; i < widths[1] * D0; i += V)
                store(w[0] + i, load(w[0] + i) - splat(lr[n]) * load(back + i));
        }
        for (int l = 0; l < L; l++)         /* and back */
            for (int64_t i = 0; i < widths[l + 1]; i++)
                memcpy(W[l] + (n * widths[l + 1] + i) * widths[l], w[l] + i * padded(widths[l]),
                       sizeof(real) * widths[l]);
    }
    free(work);
    free(P);
    return 0;
}
