// test_liger.cpp — Liger conversion: the converted layer's parameters are exactly the
// teacher's (names and values, nothing new); its gates are logsigmoid(x Wkᵀ)/16, computed
// here element by element; the whole layer (gated recurrence + sliding-window softmax, mixed
// 0.5/0.5) equals a naive f64 oracle; decoding with the cache equals the full forward.
#include <gtest/gtest.h>
#include <cmath>
#include "layers/liger.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {

ModelConfig teacher_config() {
  ModelConfig c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.n_layers = 3;
  c.mlp_hidden = 24;
  c.layer_pattern = "S";
  c.dtype = DType::f64;
  c.init_std = 0.3;
  return c;
}

std::unique_ptr<HybridLM> copy_of(const HybridLM& m) {
  auto c = std::make_unique<HybridLM>(m.cfg);
  c->load_state_dict(m.state_dict());
  return c;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

TEST(Liger, ParametersAreExactlyTheTeachers) {
  HybridLM teacher(teacher_config());
  auto student = copy_of(teacher);
  EXPECT_EQ(convert_to_liger(*student, "LLS", LigerOptions{}), (std::vector<int64_t>{0, 1}));
  EXPECT_NE(dynamic_cast<LigerAttention*>(student->blocks[0]->mixer.get()), nullptr);
  EXPECT_NE(dynamic_cast<SoftmaxAttention*>(student->blocks[2]->mixer.get()), nullptr);  // kept
  NamedTensors want = teacher.named_parameters(), got = student->named_parameters();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].first);
    EXPECT_EQ(got[i].second.to_vector(), want[i].second.to_vector()) << want[i].first;
  }
  EXPECT_EQ(student->num_parameters(), teacher.num_parameters());
  // a layer that is not softmax attention cannot be converted; the error names it
  ModelConfig hybrid = teacher_config();
  hybrid.layer_pattern = "LS";
  HybridLM h(hybrid);
  try {
    convert_to_liger(h, "L", LigerOptions{});
    FAIL() << "converted a linear layer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 0"), std::string::npos) << e.what();
  }
}

TEST(Liger, GatesAreLogSigmoidOfTheKeyProjectionOver16) {
  HybridLM teacher(teacher_config());
  auto student = copy_of(teacher);
  convert_to_liger(*student, "", LigerOptions{});
  const auto* m = dynamic_cast<LigerAttention*>(student->blocks[1]->mixer.get());
  const int64_t B = 2, T = 5, d = 16, H = 4, Hkv = 2, hd = 4;
  Tensor x = testing::rand64({B, T, d}, 3, -2, 2);
  Tensor gates = m->log_gates(x);
  ASSERT_EQ(gates.shape(), (Shape{B, H, T, hd}));
  const Tensor wk = teacher.blocks[1]->mixer->state_dict().at("k_proj.weight");  // the TEACHER's key weights
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t e = 0; e < hd; ++e) {
          const int64_t row = (h / (H / Hkv)) * hd + e;  // query head h reads kv head h / (H / Hkv)
          double k = 0;
          for (int64_t i = 0; i < d; ++i) k += x.at({b, t, i}) * wk.at({row, i});
          const double want = std::log(1.0 / (1.0 + std::exp(-k))) / 16.0;
          EXPECT_NEAR(gates.at({b, h, t, e}), want, 1e-13);
        }
}

// Half-split RoPE of one head vector at position pos.
std::vector<double> rope_naive(std::vector<double> x, int64_t pos, double theta) {
  const size_t D = x.size(), half = D / 2;
  std::vector<double> out(D);
  for (size_t i = 0; i < half; ++i) {
    const double a = static_cast<double>(pos) * std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
    out[i] = x[i] * std::cos(a) - x[i + half] * std::sin(a);
    out[i + half] = x[i + half] * std::cos(a) + x[i] * std::sin(a);
  }
  return out;
}

std::vector<double> softmax_naive(const std::vector<double>& x) {
  double m = -INFINITY, z = 0;
  for (double v : x) m = std::max(m, v);
  std::vector<double> p;
  for (double v : x) z += std::exp(v - m);
  for (double v : x) p.push_back(std::exp(v - m) / z);
  return p;
}

TEST(Liger, LayerEqualsNaiveRecurrencePlusSlidingWindow) {
  HybridLM teacher(teacher_config());
  auto student = copy_of(teacher);
  LigerOptions o;
  o.window = 3;
  o.chunk = 2;
  convert_to_liger(*student, "", o);
  auto* m = dynamic_cast<LigerAttention*>(student->blocks[0]->mixer.get());
  const int64_t B = 2, T = 7, H = 4, Hkv = 2, hd = 4;
  Tensor x = testing::rand64({B, T, 16}, 5, -1, 1);
  NoGradGuard ng;
  Tensor q = matmul(x, m->q_proj->weight.transpose(0, 1)), k = matmul(x, m->k_proj->weight.transpose(0, 1));
  Tensor v = matmul(x, m->v_proj->weight.transpose(0, 1));
  std::vector<double> mixed;  // [B, T, H*hd]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / Hkv);
        auto head = [&](const Tensor& z, int64_t hh, int64_t tt) {
          std::vector<double> r;
          for (int64_t e = 0; e < hd; ++e) r.push_back(z.at({b, tt, hh * hd + e}));
          return r;
        };
        // gated recurrence: S_s = diag(σ(k_s)^(1/16)) S_{s-1} + φk_sᵀ v_s, o = φq_t S_t
        std::vector<double> S(static_cast<size_t>(hd * hd), 0.0);
        for (int64_t s = 0; s <= t; ++s) {
          auto ks = head(k, g, s), vs = head(v, g, s), fk = softmax_naive(ks);
          for (int64_t i = 0; i < hd; ++i)
            for (int64_t j = 0; j < hd; ++j) {
              double& cell = S[static_cast<size_t>(i * hd + j)];
              cell = cell * std::pow(1.0 / (1.0 + std::exp(-ks[static_cast<size_t>(i)])), 1.0 / 16.0) +
                     fk[static_cast<size_t>(i)] * vs[static_cast<size_t>(j)];
            }
        }
        auto fq = softmax_naive(head(q, h, t));
        // sliding-window softmax over keys t-2..t with RoPE, scale 1/sqrt(hd)
        auto qr = rope_naive(head(q, h, t), t, 10000.0);
        std::vector<double> scores;
        for (int64_t s = std::max<int64_t>(0, t - o.window + 1); s <= t; ++s) {
          auto kr = rope_naive(head(k, g, s), s, 10000.0);
          double dot = 0;
          for (int64_t e = 0; e < hd; ++e) dot += qr[static_cast<size_t>(e)] * kr[static_cast<size_t>(e)];
          scores.push_back(dot / std::sqrt(static_cast<double>(hd)));
        }
        auto p = softmax_naive(scores);
        for (int64_t j = 0; j < hd; ++j) {
          double gla = 0, swa = 0;
          for (int64_t i = 0; i < hd; ++i) gla += fq[static_cast<size_t>(i)] * S[static_cast<size_t>(i * hd + j)];
          int64_t n = 0;
          for (int64_t s = std::max<int64_t>(0, t - o.window + 1); s <= t; ++s, ++n)
            swa += p[static_cast<size_t>(n)] * v.at({b, s, g * hd + j});
          mixed.push_back(0.5 * swa + 0.5 * gla);
        }
      }
  Tensor want = matmul(from_vector(mixed, {B, T, H * hd}, DType::f64), m->o_proj->weight.transpose(0, 1));
  const std::vector<double> got = m->forward(x, nullptr).to_vector();
  EXPECT_LT(max_diff(got, want.to_vector()), 1e-12);
  // without Liger Attention the layer is the recurrence alone, which differs
  m->options.attention = false;
  EXPECT_GT(max_diff(m->forward(x, nullptr).to_vector(), want.to_vector()), 1e-4);
}

TEST(Liger, DecodingWithTheCacheEqualsTheFullForward) {
  for (bool attention : {true, false}) {
    HybridLM teacher(teacher_config());
    auto student = copy_of(teacher);
    LigerOptions o;
    o.window = 3;
    o.chunk = 2;
    o.attention = attention;
    convert_to_liger(*student, "LSL", o);
    NoGradGuard ng;
    std::vector<double> ids;
    for (int64_t t = 0; t < 11; ++t) ids.push_back(static_cast<double>((t * 7 + 3) % 40));
    Tensor all = from_vector(ids, {1, 11}, DType::i64);
    const std::vector<double> full = student->forward(all).to_vector();
    std::vector<MixerCache> caches;
    std::vector<Tensor> pieces{student->forward(all.narrow(1, 0, 4), &caches)};
    for (int64_t t = 4; t < 11; ++t) pieces.push_back(student->forward(all.narrow(1, t, 1), &caches));
    EXPECT_LT(max_diff(cat(pieces, 1).to_vector(), full), 1e-10) << "attention " << attention;
  }
}

}  // namespace
}  // namespace skein
