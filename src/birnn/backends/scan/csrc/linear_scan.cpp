// birnn's linear scan on CPU: h_t = a_t * h_{t-1} + b_t along the leading (time) axis, from h_{-1} = h0.
//
// One pass over time, each step vectorised over the channels (the other axes, n of them, laid out
// contiguously per step): the cumulative form of the recurrence, as cumsum is to a sum. Plain C++
// with a C ABI (no PyTorch headers), built and loaded by birnn.backends.cpp. A call works on the
// channels [lo, hi), so that the caller can split the channels between threads.
//
// backward: given g = dL/dh, delta_t = g_t + a_{t+1} delta_{t+1} (the same recurrence run backwards),
// db_t = delta_t, da_t = delta_t * h_{t-1} (h0 at t = 0), dh0 = a_0 delta_0, in one pass from the last step.
#include <cstdint>

namespace {

template <typename T>
void forward(const T* __restrict a, const T* __restrict b, const T* __restrict h0, T* __restrict h, int64_t steps,
             int64_t n, int64_t lo, int64_t hi) {
    if (steps <= 0) return;
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) h[i] = a[i] * h0[i] + b[i];
    for (int64_t t = 1; t < steps; ++t) {
        const T* __restrict at = a + t * n;
        const T* __restrict bt = b + t * n;
        const T* __restrict hp = h + (t - 1) * n;
        T* __restrict ht = h + t * n;
#pragma omp simd
        for (int64_t i = lo; i < hi; ++i) ht[i] = at[i] * hp[i] + bt[i];
    }
}

template <typename T>
void backward(const T* __restrict a, const T* __restrict h0, const T* __restrict h, const T* __restrict g,
              T* __restrict da, T* __restrict db, T* __restrict dh0, int64_t steps, int64_t n, int64_t lo, int64_t hi) {
    if (steps <= 0) return;
    for (int64_t t = steps - 1; t >= 0; --t) {
        const T* __restrict gt = g + t * n;
        T* __restrict dt = db + t * n;
        if (t == steps - 1) {
#pragma omp simd
            for (int64_t i = lo; i < hi; ++i) dt[i] = gt[i];
        } else {
            const T* __restrict an = a + (t + 1) * n;
            const T* __restrict dn = db + (t + 1) * n;
#pragma omp simd
            for (int64_t i = lo; i < hi; ++i) dt[i] = gt[i] + an[i] * dn[i];
        }
        T* __restrict dat = da + t * n;
        if (t == 0) {
#pragma omp simd
            for (int64_t i = lo; i < hi; ++i) {
                dat[i] = dt[i] * h0[i];
                dh0[i] = a[i] * dt[i];
            }
        } else {
            const T* __restrict hp = h + (t - 1) * n;
#pragma omp simd
            for (int64_t i = lo; i < hi; ++i) dat[i] = dt[i] * hp[i];
        }
    }
}

}  // namespace

extern "C" {

void birnn_scan_forward_f32(const float* a, const float* b, const float* h0, float* h, int64_t steps, int64_t n,
                            int64_t lo, int64_t hi) {
    forward(a, b, h0, h, steps, n, lo, hi);
}
void birnn_scan_forward_f64(const double* a, const double* b, const double* h0, double* h, int64_t steps, int64_t n,
                            int64_t lo, int64_t hi) {
    forward(a, b, h0, h, steps, n, lo, hi);
}
void birnn_scan_backward_f32(const float* a, const float* h0, const float* h, const float* g, float* da, float* db,
                             float* dh0, int64_t steps, int64_t n, int64_t lo, int64_t hi) {
    backward(a, h0, h, g, da, db, dh0, steps, n, lo, hi);
}
void birnn_scan_backward_f64(const double* a, const double* h0, const double* h, const double* g, double* da,
                             double* db, double* dh0, int64_t steps, int64_t n, int64_t lo, int64_t hi) {
    backward(a, h0, h, g, da, db, dh0, steps, n, lo, hi);
}

}

// ---------------------------------------------------------------------------------------------
// The linear cells whole: gates -> (a, b) -> scan, in one pass forward and one backward.
//
// xg: the input half of the gates, element [t, d, b, g*H + j] at xg + t*sT + d*sDir + b*sRow + g*H + j.
// Rows r = d*B + b; the state h is (T, R, H) contiguous, R = D*B. valid: (T, B) bytes or null (a
// padded step keeps the state); resets: (T, R) bytes or null (a marked real step starts from h0 again).
// cell 0 minGRU [z|h]: a = 1 - s(k_z), b = s(k_z) g(k_h); cell 1 minLSTM [f|i|h]: with
// d = log s(k_f) - log s(k_i), a = s(d), b = (1 - a) g(k_h). g(x) = x + 0.5 (x >= 0), s(x) (x < 0).
// The per-element loops are branch-free so that they vectorise (exp and log1p from the vector
// math library): every exp argument is at most 80, so nothing overflows.
#include <cmath>

namespace {

template <typename T>
inline T sig(T x) { return T(1) / (T(1) + std::exp(std::fmin(-x, T(80)))); }

template <typename T>
inline T logsig(T x) { return std::fmin(x, T(0)) - std::log1p(std::exp(-std::fabs(x))); }

template <typename T>
inline T pos(T x) { return x >= T(0) ? x + T(0.5) : sig(x); }

template <typename T>
inline T dpos(T x) { const T s = sig(x); return x >= T(0) ? T(1) : s * (T(1) - s); }

struct Geometry {
    int64_t T, R, B, H, G, sT, sRow, sDir;
};

template <typename T>
inline const T* gate_row(const T* xg, const Geometry& q, int64_t t, int64_t r) {
    return xg + t * q.sT + (r / q.B) * q.sDir + (r % q.B) * q.sRow;
}

template <typename T>
void cell_forward(int cell, const T* xg, const T* h0, const uint8_t* valid, const uint8_t* resets, T* h,
                  const Geometry& q, int64_t r0, int64_t r1) {
    const int64_t H = q.H;
    for (int64_t t = 0; t < q.T; ++t) {
        for (int64_t r = r0; r < r1; ++r) {
            const T* __restrict x = gate_row(xg, q, t, r);
            const T* __restrict prev = t == 0 ? h0 + r * H : h + ((t - 1) * q.R + r) * H;
            T* __restrict out = h + (t * q.R + r) * H;
            if (valid && !valid[t * q.B + r % q.B]) {
                for (int64_t j = 0; j < H; ++j) out[j] = prev[j];
                continue;
            }
            if (resets && resets[t * q.R + r]) prev = h0 + r * H;
            if (cell == 0) {
#pragma omp simd
                for (int64_t j = 0; j < H; ++j) {
                    const T z = sig(x[j]);
                    out[j] = (T(1) - z) * prev[j] + z * pos(x[H + j]);
                }
            } else {
#pragma omp simd
                for (int64_t j = 0; j < H; ++j) {
                    const T a = sig(logsig(x[j]) - logsig(x[H + j]));
                    out[j] = a * prev[j] + (T(1) - a) * pos(x[2 * H + j]);
                }
            }
        }
    }
}

// dxg has xg's geometry; dh0, delta, a_next: (R, H) (delta_{t+1}, and what delta_t reads of step t+1).
template <typename T>
void cell_backward(int cell, const T* xg, const T* h0, const uint8_t* valid, const uint8_t* resets, const T* h,
                   const T* g, T* dxg, T* dh0, T* delta, T* a_next, const Geometry& q, int64_t r0, int64_t r1) {
    const int64_t H = q.H;
    for (int64_t k = r0 * H; k < r1 * H; ++k) delta[k] = a_next[k] = dh0[k] = T(0);
    for (int64_t t = q.T - 1; t >= 0; --t) {
        for (int64_t r = r0; r < r1; ++r) {
            const T* __restrict x = gate_row(xg, q, t, r);
            T* __restrict dx = const_cast<T*>(gate_row(static_cast<const T*>(dxg), q, t, r));
            const T* __restrict gt = g + (t * q.R + r) * H;
            T* __restrict dl = delta + r * H;
            T* __restrict an = a_next + r * H;
            T* __restrict d0 = dh0 + r * H;
            if (valid && !valid[t * q.B + r % q.B]) {  // the identity: delta passes through, no gate gradient
                for (int64_t j = 0; j < H; ++j) {
                    dl[j] = gt[j] + an[j] * dl[j];
                    an[j] = T(1);
                    if (t == 0) d0[j] += dl[j];  // an empty sequence: its h_n is h0
                }
                for (int64_t j = 0; j < q.G * H; ++j) dx[j] = T(0);
                continue;
            }
            const bool cut = resets && resets[t * q.R + r];  // this step reads h0, not the step before
            const bool from_h0 = cut || t == 0;
            const T* __restrict prev = from_h0 ? h0 + r * H : h + ((t - 1) * q.R + r) * H;
            const T keep = cut ? T(0) : T(1), to_h0 = from_h0 ? T(1) : T(0);
            if (cell == 0) {
#pragma omp simd
                for (int64_t j = 0; j < H; ++j) {
                    const T z = sig(x[j]), a = T(1) - z, hh = pos(x[H + j]);
                    const T d = gt[j] + an[j] * dl[j];
                    dl[j] = d;
                    d0[j] += to_h0 * a * d;
                    an[j] = keep * a;
                    dx[j] = (hh - prev[j]) * d * z * a;  // (-da + db g) z (1 - z), da = d prev, db = d
                    dx[H + j] = d * z * dpos(x[H + j]);
                }
            } else {
#pragma omp simd
                for (int64_t j = 0; j < H; ++j) {
                    const T a = sig(logsig(x[j]) - logsig(x[H + j])), hh = pos(x[2 * H + j]);
                    const T d = gt[j] + an[j] * dl[j];
                    dl[j] = d;
                    d0[j] += to_h0 * a * d;
                    an[j] = keep * a;
                    const T dd = (prev[j] - hh) * d * a * (T(1) - a);  // d(log f - log i)
                    dx[j] = dd * (T(1) - sig(x[j]));
                    dx[H + j] = -dd * (T(1) - sig(x[H + j]));
                    dx[2 * H + j] = d * (T(1) - a) * dpos(x[2 * H + j]);
                }
            }
        }
    }
}

}  // namespace

extern "C" {

#define BIRNN_CELL_ENTRIES(T, SFX)                                                                                   \
    void birnn_cell_forward_##SFX(int64_t cell, const T* xg, const T* h0, const uint8_t* valid,                      \
                                  const uint8_t* resets, T* h, const int64_t* geo, int64_t r0, int64_t r1) {         \
        Geometry q{geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]};                                 \
        cell_forward<T>(int(cell), xg, h0, valid, resets, h, q, r0, r1);                                            \
    }                                                                                                                \
    void birnn_cell_backward_##SFX(int64_t cell, const T* xg, const T* h0, const uint8_t* valid,                     \
                                   const uint8_t* resets, const T* h, const T* g, T* dxg, T* dh0, T* delta,          \
                                   T* a_next, const int64_t* geo, int64_t r0, int64_t r1) {                          \
        Geometry q{geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]};                                 \
        cell_backward<T>(int(cell), xg, h0, valid, resets, h, g, dxg, dh0, delta, a_next, q, r0, r1);               \
    }

BIRNN_CELL_ENTRIES(float, f32)
BIRNN_CELL_ENTRIES(double, f64)

}
