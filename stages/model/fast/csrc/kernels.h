// The C interface of the CPU kernels: the one declaration of every exported function.
//
// Each .cpp file includes this header, so a definition whose parameters differ from
// its declaration here does not compile (two C functions of one name), and
// stages/model/fast/cpu_kernels.py reads the argument and return types of every
// function from this file, so the Python side cannot disagree with it either.
// Keep one declaration per line group, ending in ");", with parameter types from:
// int, int64_t, float, double, and pointers (T* or const T*, passed as addresses).
// `dtype` is 0 for fp32 and 1 for bf16 (uint16_t); `threads` is the OpenMP thread count.
#pragma once

#include <cstdint>

extern "C" {

// The LSTM cell (lstm.cpp).
void s2s_lstm_forward(int dtype, int64_t batch, int64_t size, const void* gates, int64_t stride,
                      const float* c, void* h, float* c_new, float* act, float* tanh_c, int threads);
void s2s_lstm_backward(int dtype, int64_t batch, int64_t size, const float* act, const float* c,
                       const float* tanh_c, const void* grad_h, const float* grad_c, void* grad_gates,
                       float* grad_c_prev, int threads);

// The input-feeding decoder's attention step (attention.cpp).
void s2s_attend_forward(int dtype, int64_t batch, int64_t src, int64_t size, const void* out, const void* keys,
                        const float* bias, const void* memc, const void* proj, const void* keep, float* weights,
                        void* weights_low, float* tanh_out, void* feed, int threads);
void s2s_attend_backward(int dtype, int64_t batch, int64_t src, int64_t size, const void* grad_feed,
                         const void* keep, const float* tanh_out, const float* weights, const void* keys,
                         const void* memc, void* grad_proj, void* grad_scores, void* grad_out, int threads);

// The label-smoothed cross-entropy and its gradient (cross_entropy.cpp).
double s2s_smoothed_ce(int dtype, int64_t rows, int64_t classes, const void* logits, int64_t stride,
                       const int64_t* target, int64_t pad, float smoothing, void* grad, int threads);

// The search's k best log-softmax values of each row of logits, and their indices (search.cpp).
void s2s_log_softmax_topk(int64_t rows, int64_t classes, const float* logits, int64_t stride, int64_t k,
                          float* values, int64_t* indices, int threads);

}  // extern "C"
