// The LSTM cell, forward and backward: about ten PyTorch operators forward and twenty
// backward, each its own pass over memory, run once per target position by the
// input-feeding decoder.
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

}  // namespace

// dtype codes: 0 = fp32, 1 = bf16 (the gates' and gradients' type)
extern "C" {

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

}  // extern "C"
