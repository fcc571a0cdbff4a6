// Label-smoothed cross-entropy over the logits and its gradient, in one pass per row
// (stages/model/loss.py has the same in PyTorch operators, in blocks of rows).
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

}  // namespace

// dtype codes: 0 = fp32, 1 = bf16 (the logits' and gradient's type)
extern "C" {

double s2s_smoothed_ce(int dtype, int64_t rows, int64_t classes, const void* logits, int64_t stride,
                       const int64_t* target, int64_t pad, float smoothing, void* grad, int threads) {
    if (dtype == 1)
        return smoothed_ce(rows, classes, static_cast<const bf16*>(logits), stride, target, pad, smoothing,
                           static_cast<bf16*>(grad), threads);
    return smoothed_ce(rows, classes, static_cast<const float*>(logits), stride, target, pad, smoothing,
                       static_cast<float*>(grad), threads);
}

}  // extern "C"
