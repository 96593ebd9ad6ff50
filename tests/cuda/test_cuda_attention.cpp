// test_cuda_attention.cpp — the CUDA softmax-attention kernels (core/cuda/attention.cu) against
// the CPU op on the same random inputs: outputs and q/k/v gradients for sequence lengths around
// the tiles (1, 15, 16, 17, 63, 64, 65, 1000), head dims 64 and 128, causal and not, sliding
// windows, GQA and KV-cache offsets; the blocks of a split sequence (out and lse, rows that see
// no key, the backward) and a two-block ring merge on the GPU equal to the full attention.
// Skipped where no GPU is visible.
#include <cmath>
#include <limits>
#include "tests/cuda/cuda_compare.h"

namespace skein::cudatest {
namespace {

using V = std::vector<Tensor>;
constexpr double kTol = 10;  // f32 1e-4 (the tolerance for f32), f64 1e-11

struct Case {
  int64_t B, H, Hkv, Tq, Tk, D, Dv;
  bool causal;
  int64_t window, q_pos;  // q_pos -1: the last Tq positions
};

void check_case(const Case& c, DType dt, uint64_t seed) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  compare("softmax_attention",
          [c, scale](const V& a) { return softmax_attention(a[0], a[1], a[2], scale, c.causal, c.window, c.q_pos); },
          {plain({c.B, c.H, c.Tq, c.D}, seed, dt), plain({c.B, c.Hkv, c.Tk, c.D}, seed + 1, dt),
           plain({c.B, c.Hkv, c.Tk, c.Dv}, seed + 2, dt)},
          kTol);
}

TEST(CudaAttention, SequenceLengthsAroundTheTiles) {
  SKEIN_REQUIRE_GPU();
  uint64_t seed = 500;
  for (DType dt : float_types())
    for (int64_t T : {1, 15, 16, 17, 31, 32, 33, 63, 64, 65})
      for (bool causal : {true, false}) check_case({2, 3, 3, T, T, 8, 5, causal, 0, -1}, dt, seed += 3);
}

TEST(CudaAttention, HeadDims64And128) {
  SKEIN_REQUIRE_GPU();
  uint64_t seed = 600;
  for (DType dt : float_types())
    for (int64_t D : {64, 128}) {
      check_case({1, 2, 2, 65, 65, D, D, true, 0, -1}, dt, seed += 3);
      check_case({1, 2, 1, 1000, 1000, D, D, true, 0, -1}, dt, seed += 3);
    }
}

TEST(CudaAttention, WindowGqaAndOffsets) {
  SKEIN_REQUIRE_GPU();
  uint64_t seed = 700;
  for (DType dt : float_types()) {
    check_case({2, 4, 2, 70, 70, 16, 16, true, 7, -1}, dt, seed += 3);    // sliding window, GQA 2
    check_case({1, 6, 2, 40, 40, 16, 8, true, 33, -1}, dt, seed += 3);    // window near T, GQA 3
    check_case({1, 4, 1, 5, 90, 32, 32, true, 0, -1}, dt, seed += 3);     // KV cache: last 5 queries
    check_case({1, 4, 4, 9, 90, 32, 32, true, 16, 50}, dt, seed += 3);    // queries at 50..58, window
    check_case({1, 2, 2, 33, 47, 8, 8, false, 6, 10}, dt, seed += 3);     // non-causal window
  }
}

// A block whose queries precede every key: rows see nothing (out 0, lse -inf, zero gradient).
TEST(CudaAttention, BlockForwardLseAndRowsThatSeeNothing) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    Tensor q = randn({1, 2, 40, 16}, 801, dt), k = randn({1, 2, 37, 16}, 802, dt), v = randn({1, 2, 37, 16}, 803, dt);
    for (auto [q_pos, k_pos] : {std::pair<int64_t, int64_t>{40, 0}, {0, 20}, {10, 30}}) {
      AttentionBlockResult c = attention_block_forward(q, k, v, 0.25, true, 0, q_pos, k_pos);
      AttentionBlockResult g = attention_block_forward(q.to(Device::cuda), k.to(Device::cuda), v.to(Device::cuda),
                                                       0.25, true, 0, q_pos, k_pos);
      EXPECT_LE(rel_l2(c.out, g.out), tolerance(dt) * kTol) << q_pos << " " << k_pos;
      std::vector<double> lc = c.lse.to_vector(), lg = g.lse.to_vector();
      ASSERT_EQ(lc.size(), lg.size());
      for (size_t i = 0; i < lc.size(); ++i) {
        if (std::isinf(lc[i])) {
          EXPECT_TRUE(std::isinf(lg[i]) && lg[i] < 0) << "row " << i << " sees no key: lse " << lg[i];
        } else {
          EXPECT_NEAR(lc[i], lg[i], 1e-5 * (1 + std::abs(lc[i]))) << "lse row " << i;
        }
      }
    }
  }
}

// Two key blocks on the GPU, merged with attention_merge_, equal the full attention (out and lse),
// and the block backward summed over the blocks equals the full backward.
TEST(CudaAttention, TwoBlockRingMergeEqualsFullAttention) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    const int64_t T = 50, split = 23;
    Tensor q = randn({2, 4, T, 16}, 811, dt).to(Device::cuda);
    Tensor k = randn({2, 2, T, 16}, 812, dt).to(Device::cuda);
    Tensor v = randn({2, 2, T, 8}, 813, dt).to(Device::cuda);
    AttentionBlockResult full = attention_block_forward(q, k, v, 0.3, true, 0, 0, 0);
    Tensor k0 = k.narrow(2, 0, split).contiguous(), k1 = k.narrow(2, split, T - split).contiguous();
    Tensor v0 = v.narrow(2, 0, split).contiguous(), v1 = v.narrow(2, split, T - split).contiguous();
    AttentionBlockResult a = attention_block_forward(q, k1, v1, 0.3, true, 0, 0, split);
    AttentionBlockResult b = attention_block_forward(q, k0, v0, 0.3, true, 0, 0, 0);
    attention_merge_(a.out, a.lse, b.out, b.lse);
    EXPECT_LE(rel_l2(full.out, a.out), tolerance(dt) * kTol);
    EXPECT_LE(rel_l2(full.lse, a.lse), tolerance(dt) * kTol);
    Tensor dout = randn({2, 4, T, 8}, 814, dt).to(Device::cuda);
    std::vector<Tensor> gf = attention_block_backward(q, k, v, full.out, full.lse, dout, 0.3, true, 0, 0, 0);
    std::vector<Tensor> g0 = attention_block_backward(q, k0, v0, a.out, a.lse, dout, 0.3, true, 0, 0, 0);
    std::vector<Tensor> g1 = attention_block_backward(q, k1, v1, a.out, a.lse, dout, 0.3, true, 0, 0, split);
    EXPECT_LE(rel_l2(gf[0], add(g0[0], g1[0])), tolerance(dt) * kTol) << "dq";
    EXPECT_LE(rel_l2(gf[1], cat({g0[1], g1[1]}, 2)), tolerance(dt) * kTol) << "dk";
    EXPECT_LE(rel_l2(gf[2], cat({g0[2], g1[2]}, 2)), tolerance(dt) * kTol) << "dv";
    // and the GPU's full backward equals the CPU's
    std::vector<Tensor> gc = attention_block_backward(q.to(Device::cpu), k.to(Device::cpu), v.to(Device::cpu),
                                                      full.out.to(Device::cpu), full.lse.to(Device::cpu),
                                                      dout.to(Device::cpu), 0.3, true, 0, 0, 0);
    for (int i = 0; i < 3; ++i) EXPECT_LE(rel_l2(gc[i], gf[i]), tolerance(dt) * kTol) << "gradient " << i;
  }
}

}  // namespace
}  // namespace skein::cudatest
