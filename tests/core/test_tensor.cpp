// test_tensor.cpp — the Tensor handle: factories, views sharing storage, strides,
// contiguity, element access, dtype conversion, and error messages.
#include <gtest/gtest.h>
#include "core/backend.h"
#include "core/ops.h"

namespace skein {
namespace {

TEST(Tensor, FactoriesFillValues) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.dtype(), DType::f32);
  for (double v : z.to_vector()) EXPECT_EQ(v, 0.0);
  for (double v : ones({4}, DType::f64).to_vector()) EXPECT_EQ(v, 1.0);
  for (double v : full({2, 2}, -3.5, DType::f64).to_vector()) EXPECT_EQ(v, -3.5);
  EXPECT_EQ(arange(2, 6).to_vector(), (std::vector<double>{2, 3, 4, 5}));
  EXPECT_EQ(arange(0, 3, DType::i32).dtype(), DType::i32);
  EXPECT_EQ(scalar(7.0).item(), 7.0);
  EXPECT_EQ(scalar(7.0).dim(), 0);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor a = arange(0, 12, DType::f64).reshape({3, 4});
  Tensor t = a.transpose(0, 1);
  EXPECT_TRUE(t.same_storage(a));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.shape(), (Shape{4, 3}));
  EXPECT_EQ(t.at({1, 2}), a.at({2, 1}));
  Tensor n = a.narrow(1, 1, 2);
  EXPECT_TRUE(n.same_storage(a));
  EXPECT_EQ(n.to_vector(), (std::vector<double>{1, 2, 5, 6, 9, 10}));
  // Writing through a view is seen by the base.
  Tensor slot = a.narrow(0, 2, 1);
  fill_(slot, -1);
  EXPECT_EQ(a.at({2, 3}), -1.0);
  EXPECT_EQ(a.at({1, 3}), 7.0);
  Tensor e = arange(0, 3, DType::f64).reshape({3, 1}).expand({3, 4});
  EXPECT_EQ(e.strides(), (Shape{1, 0}));
  EXPECT_EQ(e.at({2, 3}), 2.0);
  Tensor p = arange(0, 24, DType::f64).reshape({2, 3, 4}).permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.at({3, 1, 2}), 1 * 12 + 2 * 4 + 3);
}

TEST(Tensor, ContiguousCopiesOnlyWhenNeeded) {
  Tensor a = arange(0, 6, DType::f64).reshape({2, 3});
  EXPECT_TRUE(a.contiguous().same_storage(a));
  Tensor c = a.transpose(0, 1).contiguous();
  EXPECT_FALSE(c.same_storage(a));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  // reshape of a non-contiguous view copies; view refuses.
  EXPECT_EQ(a.transpose(0, 1).reshape({6}).to_vector(), c.to_vector());
  EXPECT_THROW(a.transpose(0, 1).view({6}), Error);
  EXPECT_EQ(a.reshape({-1, 2}).shape(), (Shape{3, 2}));
}

TEST(Tensor, DtypeConversion) {
  Tensor a = from_vector({1.75, -2.25}, {2}, DType::f64);
  EXPECT_EQ(a.to(DType::f32).dtype(), DType::f32);
  EXPECT_EQ(a.to(DType::f32).to_vector(), (std::vector<double>{1.75, -2.25}));
  EXPECT_EQ(a.to(DType::i64).to_vector(), (std::vector<double>{1, -2}));
  EXPECT_TRUE(a.to(DType::f64).same_storage(a));
}

TEST(Tensor, CatStackSplitValues) {
  Tensor a = arange(0, 4, DType::f64).reshape({2, 2});
  Tensor b = arange(4, 6, DType::f64).reshape({2, 1});
  EXPECT_EQ(cat({a, b}, 1).to_vector(), (std::vector<double>{0, 1, 4, 2, 3, 5}));
  EXPECT_EQ(stack({a, a}, 0).shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(stack({a, a}, 2).to_vector(), (std::vector<double>{0, 0, 1, 1, 2, 2, 3, 3}));
  auto parts = split(arange(0, 5, DType::f64), 2, 0);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].to_vector(), (std::vector<double>{4}));
}

TEST(Tensor, ErrorsNameTheOpAndShapes) {
  Tensor a = zeros({2, 3}), b = zeros({4, 5});
  try {
    matmul(a, b);
    FAIL() << "matmul accepted mismatched shapes";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "matmul: shapes [2,3] and [4,5] do not match (3 vs 4)");
  }
  try {
    add(a, b);
    FAIL() << "add accepted shapes that do not broadcast";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("add"), std::string::npos) << m;
    EXPECT_NE(m.find("[2,3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4,5]"), std::string::npos) << m;
  }
  EXPECT_THROW(a.narrow(1, 2, 2), Error);
  EXPECT_THROW(a.permute({0, 0}), Error);
  EXPECT_THROW(a.reshape({4, 2}), Error);
  EXPECT_THROW(add(a, zeros({2, 3}, DType::f64)), Error);
  EXPECT_THROW(embedding(zeros({3, 2}), from_vector({0, 3}, {2}, DType::i64)), Error);
  EXPECT_THROW(cross_entropy(zeros({2, 3}), from_vector({0, 5}, {2}, DType::i64)), Error);
  EXPECT_THROW(rms_norm(zeros({2, 3}), ones({4})), Error);
  if (!cuda_available()) {
    EXPECT_THROW(Tensor::empty({2}, DType::f32, Device::cuda), Error);
  }
}

}  // namespace
}  // namespace skein
