// The search's top candidates per hypothesis: the k largest log-softmax values of each
// row of logits and their indices, without writing the log-softmax itself (stages/decode/search.py
// calls it through stages/model/fast/cpu_kernels.py; PyTorch's log_softmax and topk give the same).
// One pass keeps the k largest in a small sorted list (skipping blocks of 16 whose
// maximum does not beat its smallest); the first of them is the row's maximum, and a
// second pass sums exp(x - max).
// Rows are split over `threads` OpenMP threads (torch's own runtime: see cpu_kernels.py).

#include <omp.h>

#include <cmath>

#include "common.h"
#include "kernels.h"

using namespace s2s;

namespace {

constexpr int64_t BLOCK = 16;

// Insert (v, j) into the descending list vals/idx of length k, dropping its last entry.
inline void insert(float v, int64_t j, int64_t k, float* __restrict vals, int64_t* __restrict idx) {
    int64_t p = k - 1;
    while (p > 0 && vals[p - 1] < v) {  // equal values keep the earlier index first
        vals[p] = vals[p - 1];
        idx[p] = idx[p - 1];
        p--;
    }
    vals[p] = v;
    idx[p] = j;
}

void row_topk(int64_t classes, const float* __restrict x, int64_t k, float* __restrict vals,
              int64_t* __restrict idx) {
    for (int64_t p = 0; p < k; p++) {
        vals[p] = -INFINITY;
        idx[p] = -1;
    }
    int64_t filled = 0;  // entries taken so far; until k, every value enters
    int64_t j = 0;
    for (; j + BLOCK <= classes; j += BLOCK) {
        float top = -INFINITY;
#pragma omp simd reduction(max : top)
        for (int64_t b = 0; b < BLOCK; b++) top = x[j + b] > top ? x[j + b] : top;
        if (filled >= k && !(top > vals[k - 1])) continue;
        for (int64_t b = 0; b < BLOCK; b++) {
            float v = x[j + b];
            if (filled < k || v > vals[k - 1]) {
                insert(v, j + b, k, vals, idx);
                filled++;
            }
        }
    }
    for (; j < classes; j++) {
        if (filled < k || x[j] > vals[k - 1]) {
            insert(x[j], j, k, vals, idx);
            filled++;
        }
    }
    float peak = vals[0];  // the row's maximum
    float norm = 0.0f;
#pragma omp simd reduction(+ : norm)
    for (int64_t i = 0; i < classes; i++) norm += fast_exp(x[i] - peak);
    float log_norm = std::log(norm);
    for (int64_t p = 0; p < k; p++) vals[p] = (vals[p] - peak) - log_norm;  // as log_softmax: (x - max) - log(sum)
}

}  // namespace

extern "C" {

void s2s_log_softmax_topk(int64_t rows, int64_t classes, const float* logits, int64_t stride, int64_t k,
                          float* values, int64_t* indices, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) row_topk(classes, logits + r * stride, k, values + r * k, indices + r * k);
}

}  // extern "C"
