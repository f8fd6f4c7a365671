/* Fused DLN training steps: the arithmetic of dlncheck.engine._torch_path.advance_torch in C, one row
 * (a (config, run) pair) at a time, all of a segment's steps in one call.
 *
 * Built by dlncheck/engine/_fused.py with -DREAL=double or -DREAL=float. Row n is run
 * r = run_of[n] (default n % runs). Run 0 is GD (Sxx = I, N = 0); SGD run r >= 1 at step s uses
 * the batch idx[s, r - 1, :]. Moment form: it averages those rows of the per-sample table outer
 * (n x cols) into its moments [Sxx | N] (Sxx: d0 x D0, N: dL x D0, row-major with rows padded to
 * D0 columns, the padding zero). Per step, with layers W_l (d_{l+1} x d_l), l = 0..L-1:
 *   P_0 = W_0, P_l = W_l P_{l-1};  E = P_{L-1} - Syx;  residual = ||E||_F;
 *   G = E Sxx - N;  back = G;  for l = L-1..1: below = W_l^T back, W_l -= lr back P_{l-1}^T,
 *   back = below;  W_0 -= lr back.
 * Per-sample form (engine._per_sample; SGD rows when per_sample is set): a_0 = X_b, a_{l+1} =
 * W_l a_l, delta_L = a_L - Y_b, delta_l = W_l^T delta_{l+1}, W_l -= lr/B delta_{l+1} a_l^T; the
 * residual (the chain above) only at the steps marked in needed.
 * Locally every matrix's rows are padded with zeros to a multiple of the SIMD width V; products
 * are register tiles of up to 4 rows x 4 vectors (a zero pad adds exact zeros to every sum).
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

/* The register tile of gemm: rows i < mr of C, vectors q < nb of columns, each entry summed over p
 * in order, mr * nb accumulators held in registers as independent chains (always inlined with
 * constant mr, nb). C[i, qV..] = sum_p A[i si + p sp] B[p ldb + qV..], or C -= lr times that. */
static inline __attribute__((always_inline)) void tile(const int mr, const int nb, int64_t k, const real *A,
                                                      int64_t si, int64_t sp, const real *B, int64_t ldb,
                                                      real *C, int64_t ldc, int subtract, real lr) {
    vec acc[12][4];
    for (int i = 0; i < mr; i++)
        for (int q = 0; q < nb; q++) acc[i][q] = splat(0);
    for (int64_t p = 0; p < k; p++) {
        vec b[4];
        for (int q = 0; q < nb; q++) b[q] = load(B + p * ldb + q * V);
        for (int i = 0; i < mr; i++) {
            const vec a = splat(A[i * si + p * sp]);
            for (int q = 0; q < nb; q++) acc[i][q] += a * b[q];
        }
    }
    for (int i = 0; i < mr; i++)
        for (int q = 0; q < nb; q++) {
            real *c = C + i * ldc + q * V;
            store(c, subtract ? load(c) - splat(lr) * acc[i][q] : acc[i][q]);
        }
}

#define TILE(mr, nb) tile(mr, nb, k, A + i * si, si, sp, B + j, ldb, C + i * ldc + j, ldc, subtract, lr)
#define TILES(mr)                          \
    switch (nb) {                          \
        case 1: TILE(mr, 1); break;        \
        case 2: TILE(mr, 2); break;        \
        case 3: TILE(mr, 3); break;        \
        default: TILE(mr, 4);              \
    }
/* KERNEL(r) with r a compile-time constant for a thin row count rows = 5..12 (12 for any larger),
 * so that each thin kernel is unrolled for its own row count */
#define BY_THIN_ROWS(rows, KERNEL)      \
    switch (rows) {                     \
        case 5: KERNEL(5); break;       \
        case 6: KERNEL(6); break;       \
        case 7: KERNEL(7); break;       \
        case 8: KERNEL(8); break;       \
        case 9: KERNEL(9); break;       \
        case 10: KERNEL(10); break;     \
        case 11: KERNEL(11); break;     \
        default: KERNEL(12);            \
    }
#define THIN(mr) \
    if (nb == 1) TILE(mr, 1); else TILE(mr, 2)

/* C (m x nc) = A B, or C -= lr A B when subtract; A(i, p) = A[i * si + p * sp] (m x k; a transpose
 * is si = 1), B (k x nc, leading dimension ldb), C (leading dimension ldc), nc a multiple of V; each
 * entry sums over p in order. Tiles of 3-4 rows x up to 4 vectors, row tiles outermost (C and B
 * stream along their rows); a thin C (5 to 12 rows, k >= 32) is one tile of all its rows x 2
 * vectors, so B is read once. */
static void gemm_ld(int64_t m, int64_t k, int64_t nc, const real *A, int64_t si, int64_t sp, const real *B,
                    int64_t ldb, real *C, int64_t ldc, int subtract, real lr) {
    if (m >= 5 && m <= 12 && k >= 32) {
        const int64_t i = 0;
        for (int64_t j = 0; j < nc; j += 2 * V) {
            const int nb = nc - j >= 2 * V ? 2 : 1;
            BY_THIN_ROWS(m, THIN);
        }
        return;
    }
    const int64_t rows = nc >= 4 * V ? 3 : 4;
    int64_t i = 0;
    for (; i + rows <= m; i += rows)
        for (int64_t j = 0; j < nc; j += 4 * V) {
            const int nb = (nc - j) / V < 4 ? (int)((nc - j) / V) : 4;
            if (rows == 3) {
                TILES(3);
            } else {
                TILES(4);
            }
        }
    for (int64_t j = 0; j < nc && i < m; j += 4 * V) {
        const int nb = (nc - j) / V < 4 ? (int)((nc - j) / V) : 4;
        switch (m - i) {
            case 1: TILES(1); break;
            case 2: TILES(2); break;
            default: TILES(3);
        }
    }
}

static void gemm(int64_t m, int64_t k, int64_t nc, const real *A, int64_t si, int64_t sp, const real *B,
                 real *C, int subtract, real lr) {
    gemm_ld(m, k, nc, A, si, sp, B, nc, C, nc, subtract, lr);
}

/* The strip of thin_pass: columns j.. (nb vectors) of W (m x Dl), every row p in order:
 * T[c] += back[p, c] W[p] (the old W), then W[p] -= lr sum_c back[p, c] Pt[c], the sums in the order of
 * gemm's, so the result is gemm_ld's thin product followed by gemm's update, with W read once. */
static inline __attribute__((always_inline)) void thin_strip(const int mr, const int nb, int64_t m, int64_t Dl,
                                                            const real *back, int64_t ldb, real *W,
                                                            const real *Pt, real *T, real lr) {
    vec acc[12][2], pt[12][2];
    for (int c = 0; c < mr; c++)
        for (int q = 0; q < nb; q++) { acc[c][q] = splat(0); pt[c][q] = load(Pt + c * Dl + q * V); }
    for (int64_t p = 0; p < m; p++) {
        vec w[2], s[2];
        for (int q = 0; q < nb; q++) { w[q] = load(W + p * Dl + q * V); s[q] = splat(0); }
        for (int c = 0; c < mr; c++) {
            const vec a = splat(back[p * ldb + c]);
            for (int q = 0; q < nb; q++) { acc[c][q] += a * w[q]; s[q] += a * pt[c][q]; }
        }
        for (int q = 0; q < nb; q++) store(W + p * Dl + q * V, w[q] - splat(lr) * s[q]);
    }
    for (int c = 0; c < mr; c++)
        for (int q = 0; q < nb; q++) store(T + c * Dl + q * V, acc[c][q]);
}

#define STRIP(mr) \
    if (nb == 1) thin_strip(mr, 1, m, Dl, back, ldb, W + j, Pt + j, T + j, lr); \
    else thin_strip(mr, 2, m, Dl, back, ldb, W + j, Pt + j, T + j, lr)

/* One pass over W (m x Dl) for a thin back (m x d0, leading dimension ldb; 5 <= d0 <= 12):
 * T = back^T W (d0 x Dl, from W before the step) and W -= lr back Pt (Pt: d0 x Dl). Memory-bound
 * at large widths, so reading W once instead of twice is what counts (issue #28). */
static void thin_pass(int64_t d0, int64_t m, int64_t Dl, const real *back, int64_t ldb, real *W,
                      const real *Pt, real *T, real lr) {
    for (int64_t j = 0; j < Dl; j += 2 * V) {
        const int nb = Dl - j >= 2 * V ? 2 : 1;
        BY_THIN_ROWS(d0, STRIP);
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

/* One per-sample step of row weights w (padded rows): a_0 = X_b (d0 x Bp, the columns b >= B
 * zero), a_{l+1} = W_l a_l, delta_L = a_L - Y_b, delta_l = W_l^T delta_{l+1}, and every layer
 * W_l -= lr/B delta_{l+1} a_l^T, each from the weights before the step. */
static void per_sample_step(int L, const int64_t *widths, real **w, real **act, real *delta, real *below,
                            real *at, const int64_t *batch, int64_t B, int64_t Bp, const real *xt,
                            const real *yt, real lr) {
    const int64_t d0 = widths[0], dL = widths[L];
    for (int64_t j = 0; j < d0; j++)
        for (int64_t b = 0; b < B; b++) act[0][j * Bp + b] = xt[batch[b] * d0 + j];
    for (int l = 0; l < L; l++)
        gemm_ld(widths[l + 1], widths[l], Bp, w[l], padded(widths[l]), 1, act[l], Bp, act[l + 1], Bp, 0, 0);
    for (int64_t i = 0; i < dL; i++)
        for (int64_t b = 0; b < Bp; b++) delta[i * Bp + b] = b < B ? act[L][i * Bp + b] - yt[batch[b] * dL + i] : 0;
    for (int l = L - 1; l >= 0; l--) {
        const int64_t dl = widths[l], Dl = padded(dl);
        if (l > 0) gemm_ld(dl, widths[l + 1], Bp, w[l], 1, Dl, delta, Bp, below, Bp, 0, 0);
        for (int64_t b = 0; b < B; b++)           /* a_l^T, rows padded to Dl */
            for (int64_t j = 0; j < Dl; j++) at[b * Dl + j] = j < dl ? act[l][j * Bp + b] : 0;
        gemm_ld(widths[l + 1], B, Dl, delta, Bp, 1, at, Dl, w[l], Dl, 1, lr / (real)B);
        real *t = delta; delta = below; below = t;
    }
}

/* Segment of ``steps`` steps for every row. Row n is run r = run_of[n] (or n % runs without
 * run_of); run 0 takes the moment form (G = E). With per_sample, the SGD rows take the per-sample
 * form (samples xt = X^T, n x d0, and yt = Y^T, n x dL) and write their residual only at the steps
 * s with needed[s]; else the moment form with its batch moments. Returns 0, or -1 when the
 * workspace cannot be allocated. */
int dln_advance(int L, const int64_t *widths, int64_t rows, int64_t runs, int64_t steps,
                real **W, const real *lr, const int64_t *idx, int64_t B, const real *outer,
                int64_t cols, const real *Syx, real *residual, const int64_t *run_of, int per_sample,
                const unsigned char *needed, const real *xt, const real *yt) {
    const int64_t d0 = widths[0], dL = widths[L], D0 = padded(d0), Bp = padded(B);
    int64_t dmax = 0, size = 0;
    for (int l = 0; l <= L; l++) dmax = widths[l] > dmax ? widths[l] : dmax;
    for (int l = 0; l < L; l++)             /* prefixes, and the weights that need padded rows */
        size += widths[l + 1] * ((widths[l] % V ? padded(widths[l]) : 0) + D0);
    size += 4 * padded(dmax) * D0 + cols + dL * D0;
    if (per_sample) size += (L + 1 + 2) * dmax * Bp + Bp * padded(dmax);  /* activations, deltas, a^T */
    real *work = malloc(sizeof(real) * padded(size));
    real **P = malloc(sizeof(real *) * (4 * L + 1));
    if (!work || !P) { free(work); free(P); return -1; }
    memset(work, 0, sizeof(real) * padded(size));
    real **w = P + L, **act = P + 2 * L, **buffer = P + 3 * L + 1, *cursor = work;
    for (int l = 0; l < L; l++) { buffer[l] = cursor; cursor += widths[l] % V ? widths[l + 1] * padded(widths[l]) : 0; }
    for (int l = 0; l < L; l++) { P[l] = cursor; cursor += widths[l + 1] * D0; }
    real *E = cursor, *back = E + padded(dmax) * D0, *below = back + padded(dmax) * D0;
    real *transposed = below + padded(dmax) * D0, *moment = transposed + padded(dmax) * D0;
    real *syx = moment + cols;
    cursor = syx + dL * D0;
    real *delta = cursor, *spare = delta + dmax * Bp, *at = spare + dmax * Bp;
    if (per_sample) {
        cursor = at + Bp * padded(dmax);
        for (int l = 0; l <= L; l++) { act[l] = cursor; cursor += dmax * Bp; }
    }
    for (int64_t i = 0; i < dL; i++) memcpy(syx + i * D0, Syx + i * d0, sizeof(real) * d0);
    const int noisy = cols > d0 * D0;
    for (int64_t n = 0; n < rows; n++) {
        const int64_t r = run_of ? run_of[n] : n % runs;
        const int ps = per_sample && r != 0;
        for (int l = 0; l < L; l++) {      /* this row's weights: in place when no row needs a pad, */
            w[l] = W[l] + n * widths[l + 1] * widths[l];  /* else copied into the padded workspace */
            if (widths[l] % V == 0) continue;
            w[l] = buffer[l];               /* (zero pads: a diverged row may have left inf * 0 there) */
            for (int64_t i = 0; i < widths[l + 1]; i++) {
                real *row = w[l] + i * padded(widths[l]);
                memcpy(row, W[l] + (n * widths[l + 1] + i) * widths[l], sizeof(real) * widths[l]);
                memset(row + widths[l], 0, sizeof(real) * (padded(widths[l]) - widths[l]));
            }
        }
        for (int64_t s = 0; s < steps; s++) {
            const int64_t *batch = r ? idx + (s * (runs - 1) + r - 1) * B : idx;
            if (!ps || needed[s]) {
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
            }
            if (ps) {
                per_sample_step(L, widths, w, act, delta, spare, at, batch, B, Bp, xt, yt, lr[n]);
                continue;
            }
            if (r == 0) {
                memcpy(back, E, sizeof(real) * dL * D0);
            } else {
                mean_rows(batch, B, outer, cols, moment);
                gemm(dL, d0, D0, E, D0, 1, moment, back, 0, 0);
                if (noisy)
                    for (int64_t i = 0; i < dL * D0; i++) back[i] -= moment[d0 * D0 + i];
            }
            for (int l = L - 1; l >= 1; l--) {
                const int64_t dl = widths[l], Dl = padded(dl);
                for (int64_t p = 0; p < d0; p++)      /* P_{l-1}^T, rows padded to Dl */
                    for (int64_t j = 0; j < Dl; j++) transposed[p * Dl + j] = j < dl ? P[l - 1][j * D0 + p] : 0;
                if (d0 >= 5 && d0 <= 12 && dl >= 64) {  /* below^T = back^T W_l and the update: one pass */
                    thin_pass(d0, widths[l + 1], Dl, back, D0, w[l], transposed, E, lr[n]);
                    for (int64_t c = 0; c < D0; c++)
                        for (int64_t j = 0; j < dl; j++) below[j * D0 + c] = c < d0 ? E[c * Dl + j] : 0;
                } else {
                    gemm(dl, widths[l + 1], D0, w[l], 1, Dl, back, below, 0, 0);
                    gemm(widths[l + 1], d0, Dl, back, D0, 1, transposed, w[l], 1, lr[n]);
                }
                real *t = back; back = below; below = t;
            }
            for (int64_t i = 0; i < widths[1] * D0; i += V)
                store(w[0] + i, load(w[0] + i) - splat(lr[n]) * load(back + i));
        }
        for (int l = 0; l < L; l++)         /* and back */
            for (int64_t i = 0; i < widths[l + 1] && widths[l] % V; i++)
                memcpy(W[l] + (n * widths[l + 1] + i) * widths[l], w[l] + i * padded(widths[l]),
                       sizeof(real) * widths[l]);
    }
    free(work);
    free(P);
    return 0;
}
