// test_bf16.cpp — the bf16 dtype: Tensor::to rounding against torch's bfloat16 (committed
// fixture tests/fixtures/bf16/torch_bf16.txt: ties, overflow, subnormals, inf, NaN, random bit
// patterns), conversions between every dtype and strided views, fill, printing, and ops that do
// not take bf16 refusing it by name.
#include <gtest/gtest.h>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include "core/ops.h"
#include "core/rng.h"

namespace skein {
namespace {

float from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

TEST(Bf16, ToMatchesTorch) {
  std::ifstream in(std::string(SKEIN_SOURCE_DIR) + "/tests/fixtures/bf16/torch_bf16.txt");
  ASSERT_TRUE(in) << "fixture missing";
  std::vector<float> x;
  std::vector<uint16_t> want;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    uint32_t f = 0, b = 0;
    ls >> std::hex >> f >> b;
    x.push_back(from_bits(f));
    want.push_back(static_cast<uint16_t>(b));
  }
  ASSERT_GT(x.size(), 500u);
  Tensor t = Tensor::empty({static_cast<int64_t>(x.size())});
  std::memcpy(t.data<float>(), x.data(), x.size() * 4);
  Tensor b = t.to(DType::bf16);
  ASSERT_EQ(b.dtype(), DType::bf16);
  ASSERT_EQ(b.numel(), t.numel());
  const bf16* got = b.data<bf16>();
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {  // torch writes 0xffff for every NaN; skein keeps sign and payload, quiet
      EXPECT_TRUE(std::isnan(bf16_to_f32(got[i]))) << i;
      EXPECT_TRUE(got[i] & 0x0040) << "quiet NaN " << i;
      continue;
    }
    EXPECT_EQ(got[i], want[i]) << std::hexfloat << x[i] << " at " << i;
  }
  // Back to f32 is exact: every bf16 value's bits are the upper half of the f32.
  Tensor back = b.to(DType::f32);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) continue;
    uint32_t u;
    const float f = back.data<float>()[i];
    std::memcpy(&u, &f, 4);
    EXPECT_EQ(u, static_cast<uint32_t>(want[i]) << 16) << i;
  }
}

TEST(Bf16, EveryBf16SurvivesTheRoundTrip) {
  Tensor b = Tensor::empty({0x10000}, DType::bf16);
  for (uint32_t i = 0; i < 0x10000; ++i) b.data<bf16>()[i] = static_cast<bf16>(i);
  Tensor again = b.to(DType::f32).to(DType::bf16);
  for (uint32_t i = 0; i < 0x10000; ++i) {
    if (std::isnan(bf16_to_f32(static_cast<bf16>(i)))) continue;
    ASSERT_EQ(again.data<bf16>()[i], i);
  }
}

TEST(Bf16, ConversionsAndViews) {
  Tensor x = randn({5, 7}, 3);
  Tensor ref = x.to(DType::bf16);
  // A strided (transposed) source converts element by element like the contiguous one.
  Tensor xt = x.transpose(0, 1).to(DType::bf16);
  EXPECT_EQ(xt.shape(), (Shape{7, 5}));
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(xt.at({j, i}), ref.at({i, j}));
  // bf16 -> bf16 views copy bits; bf16 -> f64 widens exactly.
  Tensor c = ref.transpose(0, 1).contiguous();
  EXPECT_EQ(c.dtype(), DType::bf16);
  EXPECT_EQ(c.at({3, 2}), ref.at({2, 3}));
  EXPECT_EQ(ref.to(DType::f64).at({1, 1}), ref.at({1, 1}));
  // f64 and integers go through f32, rounding to nearest-even.
  Tensor d = from_vector({1.0 + 1.0 / 256, 1.0 + 3.0 / 256, 257.0, -3.0}, {4}, DType::f64).to(DType::bf16);
  EXPECT_EQ(d.to_vector(), (std::vector<double>{1.0, 1.0 + 4.0 / 256, 256.0, -3.0}));
  Tensor i = from_vector({257, 259, -7}, {3}, DType::i64).to(DType::bf16);
  EXPECT_EQ(i.to_vector(), (std::vector<double>{256.0, 260.0, -7.0}));
  EXPECT_EQ(i.to(DType::i32).to_vector(), (std::vector<double>{256.0, 260.0, -7.0}));
  // Rounding to 8 significant bits: relative error at most 2^-8.
  for (int64_t k = 0; k < x.numel(); ++k) {
    const double a = x.to_vector()[k], r = ref.to_vector()[k];
    EXPECT_LE(std::fabs(a - r), std::ldexp(std::fabs(a), -8)) << k;
  }
  // fill and factories.
  Tensor f = full({3}, 1.0 / 3.0, DType::bf16);
  EXPECT_EQ(f.to_vector(), std::vector<double>(3, static_cast<double>(bf16_to_f32(f32_to_bf16(1.0f / 3.0f)))));
  EXPECT_EQ(zeros({2}, DType::bf16).to_vector(), (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(from_vector({0.5, 1.0 / 3.0}, {2}, DType::bf16).to_vector()[1], f.to_vector()[0]);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_TRUE(is_floating(DType::bf16));
}

TEST(Bf16, Prints) {
  Tensor t = from_vector({1.0, 0.5, -2.0}, {3}, DType::bf16);
  EXPECT_EQ(t.str(), "Tensor[3] bf16 {1, 0.5, -2}");
  EXPECT_EQ(full({2}, 1.0 / 3.0, DType::bf16).str(), "Tensor[2] bf16 {0.333984, 0.333984}");
  EXPECT_EQ(t.at({2}), -2.0);
  EXPECT_EQ(t.narrow(0, 1, 1).item(), 0.5);
}

// Ops without a bf16 kernel throw an error naming the op and the dtype.
TEST(Bf16, UnsupportedOpsSaySo) {
  Tensor a = ones({2, 2}, DType::bf16);
  auto expect_refusal = [](const std::function<void()>& f, const std::string& op) {
    try {
      f();
      ADD_FAILURE() << op << " accepted bf16";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(op), std::string::npos) << m;
      EXPECT_NE(m.find("bf16"), std::string::npos) << m;
    }
  };
  expect_refusal([&] { add(a, a); }, "add");
  expect_refusal([&] { exp(a); }, "exp");
  expect_refusal([&] { matmul(a, a); }, "matmul");
  expect_refusal([&] { sum(a); }, "sum");
  expect_refusal([&] { softmax(a, -1); }, "softmax");
  expect_refusal([&] { arange(0, 3, DType::bf16); }, "arange");
}

}  // namespace
}  // namespace skein
