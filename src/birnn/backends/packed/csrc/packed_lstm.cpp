// birnn's packed LSTM step on CPU: the elementwise part of one step, forward and backward,
// fused into one pass over the step's rows (birnn/cpu_kernel.py builds and calls it; the
// products stay in PyTorch, through oneDNN). Plain C++ with a C ABI: no PyTorch headers,
// so it builds in about a second with the system's compiler.
//
// Layout (all contiguous, directions stacked): packed buffers are (D, N, .) with N real tokens
// in packed order (step-major, then rows sorted by length), so step t is the block of rows
// [off, off + n) of every direction; per-row tensors (D, B, .) (h0, c0, h_n, c_n, drop, the
// gradient carries) are in the sorted batch order; gains and biases are (D, .). G = 4H, gates
// in the step's order [i|f|o|g]. The equations are birnn.backends.packed.layer's (the reference step's).
//
// Per step, forward:  a = [LN(x) * ln_x + b_x | x] + [LN(r) * ln_h | r],  r = (h * drop) @ W_hh^T
//   computed by the caller; i, f, o = sigmoid(a_ifo), g = tanh(a_g); c' = f c + i g;
//   h' = o tanh(LN(c') * ln_cw + ln_cb | c'); zoneout h = h' + k_h (h_prev - h'), same for c.
// Backward: the gradient of a (the input projection's, through LN(x)), of r (through LN(r)),
//   the gains' sums, and the carries dc (whole) and dh (the zoneout part; the caller's product
//   d_r @ W_hh, times drop, is added by the next call or by finish()).

#include <cmath>
#include <cstdint>

namespace {

template <typename T> struct Layer {
  int64_t D, N, B, H;
  // forward inputs
  const T *xp, *h0, *c0, *drop, *keep_h, *keep_c;
  const T *ln_x, *b_x, *ln_h, *ln_cw, *ln_cb;
  T rate_h, rate_c;
  // forward outputs, what the backward reads
  T *y, *cs, *acts, *tc, *mean_x, *rstd_x, *mean_r, *rstd_r, *cn, *rstd_c, *inputs, *h_n, *c_n;
  // backward
  const T *dy;
  T *dh, *dc, *d_xp, *d_r, *acc_x, *acc_b, *acc_h, *acc_cw, *acc_cb;
  T *scratch;  // (3G + 2H) per direction
};

// float: exp by range reduction and a polynomial (Cephes' expf), written so loops vectorize
inline float exp_(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // (ternaries vectorize; fmin/fmax do not)
  float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = std::fma(n, -0.693359375f, x);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r) + 1.0f;
  return p * __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);  // 2^n
}
inline double exp_(double x) { return std::exp(x); }

template <typename T> inline T sigmoid_(T x) { return T(1) / (T(1) + exp_(-x)); }

inline float tanh_(float x) {  // 1 - 2 / (e^2x + 1), a series near 0 (no cancellation)
  float x2 = x * x;
  float small = x * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  float big = 1.0f - 2.0f / (exp_(2.0f * x) + 1.0f);
  return std::fabs(x) < 0.125f ? small : big;
}
inline double tanh_(double x) { return std::tanh(x); }

// layer norm's statistics of v[0..n) (eps 1e-5): the mean and 1 / the standard deviation
template <typename T> inline void statistics(const T* v, int64_t n, T* mean_out, T* rstd_out) {
  T mean = 0;  // (omp simd: sums reassociated into vector lanes, not one long dependency chain)
#pragma omp simd reduction(+ : mean)
  for (int64_t k = 0; k < n; ++k) mean += v[k];
  mean /= T(n);
  T var = 0;
#pragma omp simd reduction(+ : var)
  for (int64_t k = 0; k < n; ++k) { T d = v[k] - mean; var += d * d; }
  *mean_out = mean;
  *rstd_out = T(1) / std::sqrt(var / T(n) + T(1e-5));
}

// layer norm of v[0..n): writes the normalised values, returns rstd
template <typename T> inline T normalise(const T* v, T* out, int64_t n) {
  T mean, rstd;
  statistics(v, n, &mean, &rstd);
  for (int64_t k = 0; k < n; ++k) out[k] = (v[k] - mean) * rstd;
  return rstd;
}

// layer norm's backward: g_hat = the gradient of the normalised values (gain applied)
template <typename T> inline void normalise_backward(const T* g_hat, const T* normed, T rstd, T* out, int64_t n) {
  T m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
  for (int64_t k = 0; k < n; ++k) { m1 += g_hat[k]; m2 += g_hat[k] * normed[k]; }
  m1 /= T(n);
  m2 /= T(n);
  for (int64_t k = 0; k < n; ++k) out[k] = rstd * (g_hat[k] - m1 - normed[k] * m2);
}

// torch.lerp's formula: exactly a at w = 0 and exactly b at w = 1 (a zoned-out unit keeps its bits)
template <typename T> inline T lerp_(T a, T b, T w) {
  return w < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

// zoneout: v = lerp(v, prev, keep), keep a mask row or the rate
template <typename T> inline void zone(T* __restrict v, const T* __restrict prev, const T* __restrict keep, T rate,
                                       int64_t n) {
  if (keep) {
    for (int64_t k = 0; k < n; ++k) v[k] = lerp_(v[k], prev[k], keep[k]);
  } else if (rate != T(0)) {
    for (int64_t k = 0; k < n; ++k) v[k] = lerp_(v[k], prev[k], rate);
  }
}

// zoneout's backward: of the gradient g, the share keep * g goes to the carry, g keeps the rest
template <typename T> inline void split(T* __restrict g, T* __restrict carry, const T* __restrict keep, T rate,
                                        int64_t n) {
  if (keep) {
    for (int64_t k = 0; k < n; ++k) { carry[k] = g[k] * keep[k]; g[k] -= carry[k]; }
  } else {
    for (int64_t k = 0; k < n; ++k) { carry[k] = g[k] * rate; g[k] -= carry[k]; }
  }
}

template <typename T>
void forward(Layer<T>* L, int64_t d, int64_t off, int64_t n, int64_t n_next, int64_t prev_off, const T* rd) {
  const int64_t N = L->N, B = L->B, H = L->H, G = 4 * H;
  T* const scratch = L->scratch + d * (3 * G + 2 * H);
  T* __restrict a = scratch;  // (each from scratch: pointers based on another restrict one may alias it)
  T* __restrict c_new = scratch + G;
  T* __restrict u = scratch + G + H;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t row = d * N + off + j;  // this token in (D, N, .) buffers
    const T* __restrict x = L->xp + row * G;
    const T* __restrict r = rd + j * G;
    const T* __restrict hp = prev_off < 0 ? L->h0 + (d * B + j) * H : L->y + (d * N + prev_off + j) * H;
    const T* __restrict cp = prev_off < 0 ? L->c0 + (d * B + j) * H : L->cs + (d * N + prev_off + j) * H;
    if (L->ln_x) {  // (the statistics are kept; the backward normalises again)
      statistics(x, G, L->mean_x + row, L->rstd_x + row);
      const T mean = L->mean_x[row], rstd = L->rstd_x[row];
      const T* __restrict gx = L->ln_x + d * G;
      const T* __restrict bx = L->b_x ? L->b_x + d * G : nullptr;
      if (bx) {
        for (int64_t k = 0; k < G; ++k) a[k] = (x[k] - mean) * rstd * gx[k] + bx[k];
      } else {
        for (int64_t k = 0; k < G; ++k) a[k] = (x[k] - mean) * rstd * gx[k];
      }
    } else {
      for (int64_t k = 0; k < G; ++k) a[k] = x[k];
    }
    if (L->ln_h) {  // (r itself is kept by the caller)
      statistics(r, G, L->mean_r + row, L->rstd_r + row);
      const T mean = L->mean_r[row], rstd = L->rstd_r[row];
      const T* __restrict gh = L->ln_h + d * G;
      for (int64_t k = 0; k < G; ++k) a[k] += (r[k] - mean) * rstd * gh[k];
    } else {
      for (int64_t k = 0; k < G; ++k) a[k] += r[k];
    }
    T* __restrict act = L->acts + row * G;
    for (int64_t k = 0; k < 3 * H; ++k) act[k] = sigmoid_(a[k]);
    for (int64_t k = 3 * H; k < G; ++k) act[k] = tanh_(a[k]);
    const T *__restrict i = act, *__restrict f = act + H, *__restrict o = act + 2 * H, *__restrict g = act + 3 * H;
    for (int64_t k = 0; k < H; ++k) c_new[k] = f[k] * cp[k] + i[k] * g[k];
    if (L->ln_cw) {
      T* __restrict cn = L->cn + row * H;
      L->rstd_c[row] = normalise(c_new, cn, H);
      const T *w = L->ln_cw + d * H, *b = L->ln_cb + d * H;
      for (int64_t k = 0; k < H; ++k) u[k] = cn[k] * w[k] + b[k];
    } else {
      for (int64_t k = 0; k < H; ++k) u[k] = c_new[k];
    }
    T* __restrict tc = L->tc + row * H;
    T* __restrict y = L->y + row * H;
    T* __restrict c = L->cs + row * H;
    for (int64_t k = 0; k < H; ++k) tc[k] = tanh_(u[k]);
    for (int64_t k = 0; k < H; ++k) y[k] = o[k] * tc[k];
    zone(y, hp, L->keep_h ? L->keep_h + row * H : nullptr, L->rate_h, H);
    for (int64_t k = 0; k < H; ++k) c[k] = c_new[k];
    zone(c, cp, L->keep_c ? L->keep_c + row * H : nullptr, L->rate_c, H);
    if (j >= n_next) {  // the sequence ends here: its final states
      for (int64_t k = 0; k < H; ++k) { L->h_n[(d * B + j) * H + k] = y[k]; L->c_n[(d * B + j) * H + k] = c[k]; }
    } else {  // the next step's product input, h * drop
      T* __restrict next = L->inputs + (d * N + off + n + j) * H;
      const T* __restrict m = L->drop ? L->drop + (d * B + j) * H : nullptr;
      for (int64_t k = 0; k < H; ++k) next[k] = m ? y[k] * m[k] : y[k];
    }
  }
}

// dh[d, :n] += product * drop: the recurrent product's share of the carry
template <typename T> void add_product(Layer<T>* L, int64_t d, int64_t n, const T* g) {
  const int64_t B = L->B, H = L->H;
  for (int64_t j = 0; j < n; ++j) {
    T* __restrict dh = L->dh + (d * B + j) * H;
    const T* __restrict m = L->drop ? L->drop + (d * B + j) * H : nullptr;
    const T* __restrict gj = g + j * H;
    if (m) {
      for (int64_t k = 0; k < H; ++k) dh[k] += gj[k] * m[k];
    } else {
      for (int64_t k = 0; k < H; ++k) dh[k] += gj[k];
    }
  }
}

template <typename T>
void backward(Layer<T>* L, int64_t d, int64_t off, int64_t n, int64_t n_after, int64_t prev_off, const T* gd,
              const T* rd) {
  const int64_t N = L->N, B = L->B, H = L->H, G = 4 * H;
  if (n_after) add_product(L, d, n_after, gd);
  T* const scratch = L->scratch + d * (3 * G + 2 * H);
  T* __restrict da = scratch;
  T* __restrict nrm = scratch + 2 * G + 2 * H;  // G: a row normalised again
  T* __restrict tmp = scratch + G;  // G
  T* __restrict gh = scratch + 2 * G;  // H
  T* __restrict gc = scratch + 2 * G + H;  // H
  for (int64_t j = 0; j < n; ++j) {
    const int64_t row = d * N + off + j;
    T* __restrict dh = L->dh + (d * B + j) * H;
    T* __restrict dc = L->dc + (d * B + j) * H;
    const T* __restrict dy = L->dy + row * H;
    const T* __restrict cp = prev_off < 0 ? L->c0 + (d * B + j) * H : L->cs + (d * N + prev_off + j) * H;
    const T* __restrict kh = L->keep_h ? L->keep_h + row * H : nullptr;
    const T* __restrict kc = L->keep_c ? L->keep_c + row * H : nullptr;
    const T* __restrict act = L->acts + row * G;
    const T *__restrict i = act, *__restrict f = act + H, *__restrict o = act + 2 * H, *__restrict g = act + 3 * H;
    const T* __restrict tc = L->tc + row * H;
    for (int64_t k = 0; k < H; ++k) gh[k] = dh[k] + dy[k];
    for (int64_t k = 0; k < H; ++k) gc[k] = dc[k];
    split(gh, dh, kh, L->rate_h, H);  // the zoneout share of the carries (the rest added below / later)
    split(gc, dc, kc, L->rate_c, H);
    for (int64_t k = 0; k < H; ++k) tmp[k] = gh[k] * o[k] * (T(1) - tc[k] * tc[k]);  // tanh's input's
    if (L->ln_cw) {
      const T* __restrict cn = L->cn + row * H;
      const T* __restrict w = L->ln_cw + d * H;
      T* __restrict acc_w = L->acc_cw + d * H;
      T* __restrict acc_b = L->acc_cb + d * H;
      T* __restrict ghat = scratch + G + H;  // (tmp's second quarter)
#pragma omp simd  // (gcc does not see these pointers apart)
      for (int64_t k = 0; k < H; ++k) {
        acc_w[k] += tmp[k] * cn[k];
        acc_b[k] += tmp[k];
        ghat[k] = tmp[k] * w[k];
      }
      normalise_backward(ghat, cn, L->rstd_c[row], tmp, H);
    }
    {
      T* __restrict da_i = scratch;
      T* __restrict da_f = scratch + H;
      T* __restrict da_o = scratch + 2 * H;
      T* __restrict da_g = scratch + 3 * H;
#pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        T c = gc[k] + tmp[k];
        da_i[k] = c * g[k] * i[k] * (T(1) - i[k]);
        da_f[k] = c * cp[k] * f[k] * (T(1) - f[k]);
        da_o[k] = gh[k] * tc[k] * o[k] * (T(1) - o[k]);
        da_g[k] = c * i[k] * (T(1) - g[k] * g[k]);
        dc[k] += c * f[k];
      }
    }
    T* __restrict dxp = L->d_xp + row * G;
    if (L->ln_x) {
      const T* __restrict x = L->xp + row * G;
      const T* __restrict gx = L->ln_x + d * G;
      const T mean = L->mean_x[row], rstd = L->rstd_x[row];
      for (int64_t k = 0; k < G; ++k) nrm[k] = (x[k] - mean) * rstd;
      T* __restrict acc_x = L->acc_x + d * G;
      T* __restrict acc_b = L->acc_b ? L->acc_b + d * G : nullptr;
      for (int64_t k = 0; k < G; ++k) {
        acc_x[k] += da[k] * nrm[k];
        tmp[k] = da[k] * gx[k];
      }
      if (acc_b)
        for (int64_t k = 0; k < G; ++k) acc_b[k] += da[k];
      normalise_backward(tmp, nrm, rstd, dxp, G);
    } else {
      for (int64_t k = 0; k < G; ++k) dxp[k] = da[k];
    }
    if (L->ln_h) {
      const T* __restrict r = rd + j * G;
      const T* __restrict gr = L->ln_h + d * G;
      const T mean = L->mean_r[row], rstd = L->rstd_r[row];
      for (int64_t k = 0; k < G; ++k) nrm[k] = (r[k] - mean) * rstd;
      T* __restrict acc_h = L->acc_h + d * G;
      for (int64_t k = 0; k < G; ++k) {
        acc_h[k] += da[k] * nrm[k];
        tmp[k] = da[k] * gr[k];
      }
      normalise_backward(tmp, nrm, rstd, L->d_r + row * G, G);
    } else if (L->d_r != L->d_xp) {
      T* __restrict dr = L->d_r + row * G;
      for (int64_t k = 0; k < G; ++k) dr[k] = da[k];
    }
  }
}

}  // namespace

extern "C" {
// the struct's size, so the caller can check its layout matches
int64_t birnn_layer_size_f32() { return sizeof(Layer<float>); }
int64_t birnn_layer_size_f64() { return sizeof(Layer<double>); }

#define BIRNN_ENTRIES(T, SUF)                                                                                  \
  void birnn_forward_##SUF(Layer<T>* L, int64_t off, int64_t n, int64_t n_next, int64_t prev_off, const T* r0, \
                           const T* r1) {                                                                      \
    for (int64_t d = 0; d < L->D; ++d) forward(L, d, off, n, n_next, prev_off, d ? r1 : r0);            \
  }                                                                                                            \
  void birnn_backward_##SUF(Layer<T>* L, int64_t off, int64_t n, int64_t n_after, int64_t prev_off,           \
                            const T* g0, const T* g1, const T* r0, const T* r1) {                              \
    for (int64_t d = 0; d < L->D; ++d) backward(L, d, off, n, n_after, prev_off, d ? g1 : g0, d ? r1 : r0);   \
  }                                                                                                            \
  void birnn_add_product_##SUF(Layer<T>* L, int64_t n, const T* g0, const T* g1) {                            \
    for (int64_t d = 0; d < L->D; ++d) add_product(L, d, n, d ? g1 : g0);                                     \
  }

BIRNN_ENTRIES(float, f32)
BIRNN_ENTRIES(double, f64)
}
