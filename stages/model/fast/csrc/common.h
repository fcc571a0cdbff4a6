// Shared pieces of the fused CPU kernels (stages/model/fast/csrc/*.cpp): bf16 conversions and the
// activations, written so that g++ vectorizes the loops that use them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace s2s {

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

}  // namespace s2s
