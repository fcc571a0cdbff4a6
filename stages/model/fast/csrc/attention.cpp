// The input-feeding decoder's attention step (stages/model/fast/feeding.py), forward and backward.
// Built with the other files of stages/model/fast/csrc/ into one library on first use by
// stages/model/fast/cpu_kernels.py (g++ -O3 -march=native -fopenmp) and called through ctypes.
// Tensors arrive as raw pointers, bf16 as uint16_t; the math is fp32. Rows are split
// over `threads` OpenMP threads (torch's own runtime: see cpu_kernels.py).

#include <omp.h>

#include <vector>

#include "common.h"
#include "kernels.h"

using namespace s2s;

namespace {

// One step of multiplicative attention with a linear combine layer, as the
// input-feeding decoder runs it per target position (stages/model/fast/feeding.py), for each
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

// dtype codes: 0 = fp32, 1 = bf16
extern "C" {

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
