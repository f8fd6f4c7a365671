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

/* C (m x nc) = A (m x k, leading dim lda) B (k x nc, leading dim nc); nc a multiple of V */
static void mm(int64_t m, int64_t k, int64_t nc, const real *A, int64_t lda, const real *B, real *C) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nc; j += V) {
            vec acc = splat(0);
            for (int64_t p = 0; p < k; p++) acc += splat(A[i * lda + p]) * load(B + p * nc + j);
            store(C + i * nc + j, acc);
        }
}

/* C (k x nc) = A^T B, A (m x k, leading dim lda), B (m x nc) */
static void mtm(int64_t m, int64_t k, int64_t nc, const real *A, int64_t lda, const real *B, real *C) {
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < nc; j += V) {
            vec acc = splat(0);
            for (int64_t p = 0; p < m; p++) acc += splat(A[p * lda + i]) * load(B + p * nc + j);
            store(C + i * nc + j, acc);
        }
}

/* W (m x kc) -= lr A BT, A (m x n, leading dim lda), BT (n x kc) */
static void sub_mm(int64_t m, int64_t n, int64_t kc, real lr, const real *A, int64_t lda, const real *BT, real *W) {
    const vec rate = splat(lr);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < kc; j += V) {
            vec acc = splat(0);
            for (int64_t p = 0; p < n; p++) acc += splat(A[i * lda + p]) * load(BT + p * kc + j);
            store(W + i * kc + j, load(W + i * kc + j) - rate * acc);
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
            for (int l = 1; l < L; l++) mm(widths[l + 1], widths[l], D0, w[l], padded(widths[l]), P[l - 1], P[l]);
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
                const int64_t *batch = idx + (s * (runs - 1) + r - 1) * B;
                memcpy(moment, outer + batch[0] * cols, sizeof(real) * cols);
                for (int64_t b = 1; b < B; b++) {
                    const real *row = outer + batch[b] * cols;
                    for (int64_t c = 0; c < cols; c++) moment[c] += row[c];
                }
                for (int64_t c = 0; c < cols; c++) moment[c] /= (real)B;
                mm(dL, d0, D0, E, D0, moment, back);
                if (noisy)
                    for (int64_t i = 0; i < dL * D0; i++) back[i] -= moment[d0 * D0 + i];
            }
            for (int l = L - 1; l >= 1; l--) {
                const int64_t dl = widths[l], Dl = padded(dl);
                mtm(widths[l + 1], dl, D0, w[l], Dl, back, below);
                for (int64_t p = 0; p < d0; p++)      /* P_{l-1}^T, rows padded to Dl */
                    for (int64_t j = 0; j < Dl; j++) transposed[p * Dl + j] = j < dl ? P[l - 1][j * D0 + p] : 0;
                sub_mm(widths[l + 1], d0, Dl, lr[n], back, D0, transposed, w[l]);
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
