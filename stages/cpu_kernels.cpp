// Fused CPU kernels for the training step's elementwise work, built on first use by
// stages/cpu_kernels.py (g++ -O3 -march=native) and called through ctypes.
//
// Each replaces a chain of PyTorch operators, each of which makes its own pass over
// memory and costs several microseconds of dispatch: the LSTM cell (about ten
// operators forward, twenty backward, once per target position in the input-feeding
// decoder) and the label-smoothed cross-entropy over the logits. Tensors arrive as
// raw pointers, bf16 as uint16_t; the math is fp32, as in the PyTorch versions.
// No torch headers: the library builds in about a second.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <omp.h>
#include <vector>

namespace {

using bf16 = uint16_t;

inline float to_f32(float v) { return v; }
inline float to_f32(bf16 v) {
    uint32_t u = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

template <typename T> inline T from_f32(float f);
template <> inline float from_f32<float>(float f) { return f; }
template <> inline bf16 from_f32<bf16>(float f) {  // round to nearest even, as PyTorch
    uint32_t u;
    std::memcpy(&u, &f, 4);
    uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return static_cast<bf16>(nan ? ((u >> 16) | 0x40u) : rounded);
}

// exp(x) in fp32 (Cephes' expf: x = n ln2 + r, a degree-6 polynomial in r; about
// 1 ulp), written so that g++ vectorizes loops that call it. Below -87.3 (where
// expf's results turn subnormal) it is 0, so that exp(-inf) of a masked position is 0.
inline float fast_exp(float x) {
    float below = x < -87.3f ? 0.0f : 1.0f;
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.7f ? 88.7f : x;
    float n = std::floor(std::fma(x, 1.44269504088896341f, 0.5f));
    float r = std::fma(n, -0.693359375f, x);
    r = std::fma(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = std::fma(p, r, 1.3981999507e-3f);
    p = std::fma(p, r, 8.3334519073e-3f);
    p = std::fma(p, r, 4.1665795894e-2f);
    p = std::fma(p, r, 1.6666665459e-1f);
    p = std::fma(p, r, 5.0000001201e-1f);
    p = std::fma(p, r * r, r + 1.0f);
    int32_t e = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &e, 4);
    return p * scale * below;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

inline float tanh_(float x) {
    float e = fast_exp(-2.0f * std::fabs(x));
    return std::copysign((1.0f - e) / (1.0f + e), x);
}

// gates (B, 4H) in i, f, g, o order, rows `stride` apart; c (B, H) fp32 ->
// h (B, H) in the gates' type, c_new (B, H); saved for backward: act (B, 4H) (the
// activated gates) and tanh_c (B, H).
template <typename T>
void lstm_forward(int64_t batch, int64_t size, const T* __restrict gates, int64_t stride,
                  const float* __restrict c, T* __restrict h, float* __restrict c_new,
                  float* __restrict act, float* __restrict tanh_c, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < batch; b++) {
        const T* g = gates + b * stride;
        float* a = act + b * 4 * size;
        const float* cb = c + b * size;
        float* cn = c_new + b * size;
        float* tc = tanh_c + b * size;
        T* hb = h + b * size;
#pragma GCC ivdep
        for (int64_t j = 0; j < size; j++) {
            float i = sigmoid(to_f32(g[j])), f = sigmoid(to_f32(g[size + j]));
            float cand = tanh_(to_f32(g[2 * size + j])), o = sigmoid(to_f32(g[3 * size + j]));
            a[j] = i;
            a[size + j] = f;
            a[2 * size + j] = cand;
            a[3 * size + j] = o;
            float cell = f * cb[j] + i * cand;
            float t = tanh_(cell);
            cn[j] = cell;
            tc[j] = t;
            hb[j] = from_f32<T>(o * t);
        }
    }
}

// Gradients of lstm_forward: grad_h (B, H) in the gates' type, grad_c (B, H) fp32 ->
// grad_gates (B, 4H) in the gates' type, grad_c_prev (B, H).
template <typename T>
void lstm_backward(int64_t batch, int64_t size, const float* __restrict act, const float* __restrict c,
                   const float* __restrict tanh_c, const T* __restrict grad_h, const float* __restrict grad_c,
                   T* __restrict grad_gates, float* __restrict grad_c_prev, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < batch; b++) {
        const float* a = act + b * 4 * size;
        T* gg = grad_gates + b * 4 * size;
        int64_t row = b * size;
#pragma GCC ivdep
        for (int64_t j = 0; j < size; j++) {
            int64_t k = row + j;
            float i = a[j], f = a[size + j], cand = a[2 * size + j], o = a[3 * size + j], t = tanh_c[k];
            float gh = to_f32(grad_h[k]);
            float dc = grad_c[k] + gh * o * (1.0f - t * t);
            gg[j] = from_f32<T>(dc * cand * (i - i * i));
            gg[size + j] = from_f32<T>(dc * c[k] * (f - f * f));
            gg[2 * size + j] = from_f32<T>(dc * i * (1.0f - cand * cand));
            gg[3 * size + j] = from_f32<T>(gh * t * (o - o * o));
            grad_c_prev[k] = dc * f;
        }
    }
}

// Label-smoothed cross-entropy of rows [begin, end) of logits (N, V), rows `stride`
// apart; returns the summed loss of rows whose target is not `pad`. With `grad`
// (N, V, contiguous), also writes d loss / d logits there: softmax minus the smoothed
// target, zero on padding rows. `buffer` holds V floats.
template <typename T>
double smoothed_ce_rows(int64_t begin, int64_t end, int64_t classes, const T* __restrict logits,
                        int64_t stride, const int64_t* __restrict target, int64_t pad, float smoothing,
                        T* __restrict grad, float* __restrict buffer) {
    double total = 0.0;
    for (int64_t r = begin; r < end; r++) {
        const T* x = logits + r * stride;
        int64_t tgt = target[r];
        float keep = tgt != pad ? 1.0f : 0.0f;
        float peak = -INFINITY, sum_x = 0.0f;
#pragma omp simd reduction(max : peak) reduction(+ : sum_x)
        for (int64_t j = 0; j < classes; j++) {
            float v = to_f32(x[j]);
            peak = v > peak ? v : peak;
            sum_x += v;
        }
        float norm = 0.0f;
#pragma omp simd reduction(+ : norm)
        for (int64_t j = 0; j < classes; j++) {
            float e = fast_exp(to_f32(x[j]) - peak);
            buffer[j] = e;
            norm += e;
        }
        float lse = peak + std::log(norm);
        float picked = to_f32(x[tgt]);
        float loss = (1.0f - smoothing) * (lse - picked);
        if (smoothing != 0.0f) loss += smoothing * (lse - sum_x / static_cast<float>(classes));
        total += static_cast<double>(loss * keep);
        if (grad != nullptr) {
            T* g = grad + r * classes;
            float scale = keep / norm, floor = keep * smoothing / static_cast<float>(classes);
#pragma GCC ivdep
            for (int64_t j = 0; j < classes; j++) g[j] = from_f32<T>(buffer[j] * scale - floor);
            g[tgt] = from_f32<T>(buffer[tgt] * scale - floor - keep * (1.0f - smoothing));
        }
    }
    return total;
}

template <typename T>
double smoothed_ce(int64_t rows, int64_t classes, const T* logits, int64_t stride, const int64_t* target,
                   int64_t pad, float smoothing, T* grad, int threads) {
    double total = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        std::vector<float> buffer(classes);
        int parts = omp_get_num_threads(), part = omp_get_thread_num();
        int64_t begin = rows * part / parts, end = rows * (part + 1) / parts;
        total += smoothed_ce_rows(begin, end, classes, logits, stride, target, pad, smoothing, grad, buffer.data());
    }
    return total;
}

// One step of multiplicative attention with a linear combine layer, as the
// input-feeding decoder runs it per target position (stages/feeding.py), for each
// sentence b of the batch:
//   weights = softmax(out . keys_s + bias_s)            (S,)  bias: 0, or -inf on padding
//   tanh_out = tanh(proj + sum_s weights_s memc_s)      (H,)  proj = W_out out, memc = W_ctx memory
//   feed = tanh_out * keep                              (H,)  keep: the dropout mask, or none
// out, proj, keep, feed (B, H); keys, memc (B, S, H), rows contiguous; bias, weights
// (B, S) fp32, weights_low the same in T (for the gathered gradient of memc);
// tanh_out (B, H) fp32, saved for backward.
template <typename T>
void attend_forward(int64_t batch, int64_t src, int64_t size, const T* __restrict out, const T* __restrict keys,
                    const float* __restrict bias, const T* __restrict memc, const T* __restrict proj,
                    const T* __restrict keep, float* __restrict weights, T* __restrict weights_low,
                    float* __restrict tanh_out, T* __restrict feed, int threads) {
#pragma omp parallel num_threads(threads)
    {
    std::vector<float> query(size), mixed(size);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; b++) {
        const T* o = out + b * size;
        for (int64_t h = 0; h < size; h++) query[h] = to_f32(o[h]);
        float* w = weights + b * src;
        float peak = -INFINITY;
        for (int64_t s = 0; s < src; s++) {
            const T* k = keys + (b * src + s) * size;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t h = 0; h < size; h++) acc += query[h] * to_f32(k[h]);
            w[s] = acc + bias[b * src + s];
            peak = w[s] > peak ? w[s] : peak;
        }
        float norm = 0.0f;
        for (int64_t s = 0; s < src; s++) {
            w[s] = fast_exp(w[s] - peak);
            norm += w[s];
        }
        for (int64_t s = 0; s < src; s++) {
            w[s] /= norm;
            weights_low[b * src + s] = from_f32<T>(w[s]);
        }
        const T* p = proj + b * size;
        for (int64_t h = 0; h < size; h++) mixed[h] = to_f32(p[h]);
        for (int64_t s = 0; s < src; s++) {
            const T* m = memc + (b * src + s) * size;
            float ws = w[s];
            if (ws == 0.0f) continue;  // padding
#pragma omp simd
            for (int64_t h = 0; h < size; h++) mixed[h] += ws * to_f32(m[h]);
        }
        float* t = tanh_out + b * size;
        T* f = feed + b * size;
        const T* kp = keep ? keep + b * size : nullptr;
#pragma omp simd
        for (int64_t h = 0; h < size; h++) {
            float v = tanh_(mixed[h]);
            t[h] = v;
            f[h] = from_f32<T>(kp ? v * to_f32(kp[h]) : v);
        }
    }
    }
}

// Gradients of attend_forward for grad_feed (B, H): grad_proj (B, H) (also the
// gradient of the mixed vector, for memc's gathered gradient), grad_scores (B, S)
// (for keys' gathered gradient) and grad_out (B, H), all in T.
template <typename T>
void attend_backward(int64_t batch, int64_t src, int64_t size, const T* __restrict grad_feed,
                     const T* __restrict keep, const float* __restrict tanh_out, const float* __restrict weights,
                     const T* __restrict keys, const T* __restrict memc, T* __restrict grad_proj,
                     T* __restrict grad_scores, T* __restrict grad_out, int threads) {
#pragma omp parallel num_threads(threads)
    {
    std::vector<float> grad_mixed(size), grad_query(size), grad_w(src);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; b++) {
        const T* gf = grad_feed + b * size;
        const float* t = tanh_out + b * size;
        const T* kp = keep ? keep + b * size : nullptr;
        T* gp = grad_proj + b * size;
#pragma omp simd
        for (int64_t h = 0; h < size; h++) {
            float g = to_f32(gf[h]) * (kp ? to_f32(kp[h]) : 1.0f) * (1.0f - t[h] * t[h]);
            grad_mixed[h] = g;
            gp[h] = from_f32<T>(g);
        }
        const float* w = weights + b * src;
        float expected = 0.0f;  // sum_s w_s grad_w_s, for the softmax's backward
        for (int64_t s = 0; s < src; s++) {
            const T* m = memc + (b * src + s) * size;
            float acc = 0.0f;
            if (w[s] != 0.0f) {
#pragma omp simd reduction(+ : acc)
                for (int64_t h = 0; h < size; h++) acc += grad_mixed[h] * to_f32(m[h]);
            }
            grad_w[s] = acc;
            expected += w[s] * acc;
        }
        for (int64_t h = 0; h < size; h++) grad_query[h] = 0.0f;
        for (int64_t s = 0; s < src; s++) {
            float gs = w[s] * (grad_w[s] - expected);
            grad_scores[b * src + s] = from_f32<T>(gs);
            if (gs == 0.0f) continue;
            const T* k = keys + (b * src + s) * size;
#pragma omp simd
            for (int64_t h = 0; h < size; h++) grad_query[h] += gs * to_f32(k[h]);
        }
        T* go = grad_out + b * size;
        for (int64_t h = 0; h < size; h++) go[h] = from_f32<T>(grad_query[h]);
    }
    }
}

}  // namespace

extern "C" {

// dtype codes: 0 = fp32, 1 = bf16 (the gates', logits' and gradients' type)

void s2s_lstm_forward(int dtype, int64_t batch, int64_t size, const void* gates, int64_t stride,
                      const float* c, void* h, float* c_new, float* act, float* tanh_c, int threads) {
    if (dtype == 1)
        lstm_forward(batch, size, static_cast<const bf16*>(gates), stride, c, static_cast<bf16*>(h), c_new, act,
                     tanh_c, threads);
    else
        lstm_forward(batch, size, static_cast<const float*>(gates), stride, c, static_cast<float*>(h), c_new,
                     act, tanh_c, threads);
}

void s2s_lstm_backward(int dtype, int64_t batch, int64_t size, const float* act, const float* c,
                       const float* tanh_c, const void* grad_h, const float* grad_c, void* grad_gates,
                       float* grad_c_prev, int threads) {
    if (dtype == 1)
        lstm_backward(batch, size, act, c, tanh_c, static_cast<const bf16*>(grad_h), grad_c,
                      static_cast<bf16*>(grad_gates), grad_c_prev, threads);
    else
        lstm_backward(batch, size, act, c, tanh_c, static_cast<const float*>(grad_h), grad_c,
                      static_cast<float*>(grad_gates), grad_c_prev, threads);
}

double s2s_smoothed_ce(int dtype, int64_t rows, int64_t classes, const void* logits, int64_t stride,
                       const int64_t* target, int64_t pad, float smoothing, void* grad, int threads) {
    if (dtype == 1)
        return smoothed_ce(rows, classes, static_cast<const bf16*>(logits), stride, target, pad, smoothing,
                           static_cast<bf16*>(grad), threads);
    return smoothed_ce(rows, classes, static_cast<const float*>(logits), stride, target, pad, smoothing,
                       static_cast<float*>(grad), threads);
}

void s2s_attend_forward(int dtype, int64_t batch, int64_t src, int64_t size, const void* out, const void* keys,
                        const float* bias, const void* memc, const void* proj, const void* keep, float* weights,
                        void* weights_low, float* tanh_out, void* feed, int threads) {
    if (dtype == 1)
        attend_forward(batch, src, size, static_cast<const bf16*>(out), static_cast<const bf16*>(keys), bias,
                       static_cast<const bf16*>(memc), static_cast<const bf16*>(proj), static_cast<const bf16*>(keep),
                       weights, static_cast<bf16*>(weights_low), tanh_out, static_cast<bf16*>(feed), threads);
    else
        attend_forward(batch, src, size, static_cast<const float*>(out), static_cast<const float*>(keys), bias,
                       static_cast<const float*>(memc), static_cast<const float*>(proj),
                       static_cast<const float*>(keep), weights, static_cast<float*>(weights_low), tanh_out,
                       static_cast<float*>(feed), threads);
}

void s2s_attend_backward(int dtype, int64_t batch, int64_t src, int64_t size, const void* grad_feed,
                         const void* keep, const float* tanh_out, const float* weights, const void* keys,
                         const void* memc, void* grad_proj, void* grad_scores, void* grad_out, int threads) {
    if (dtype == 1)
        attend_backward(batch, src, size, static_cast<const bf16*>(grad_feed), static_cast<const bf16*>(keep),
                        tanh_out, weights, static_cast<const bf16*>(keys), static_cast<const bf16*>(memc),
                        static_cast<bf16*>(grad_proj), static_cast<bf16*>(grad_scores), static_cast<bf16*>(grad_out), threads);
    else
        attend_backward(batch, src, size, static_cast<const float*>(grad_feed), static_cast<const float*>(keep),
                        tanh_out, weights, static_cast<const float*>(keys), static_cast<const float*>(memc),
                        static_cast<float*>(grad_proj), static_cast<float*>(grad_scores),
                        static_cast<float*>(grad_out), threads);
}

}  // extern "C"
