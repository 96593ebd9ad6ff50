// test_lolcats.cpp — the LoLCATs mixer: the joint-normaliser attention against a naive O(T²)
// oracle in f64 and finite differences; with the window over the whole sequence (linear term
// off, or empty) the converted model IS the teacher; decoding with the O(w) cache (one token or
// a short chunk at a time, several windows, T > 3w) and a prompt + N greedy steps equal the full
// forward; stage 1 (attention transfer) lowers the per-layer MSE on held-out activations.
#include <gtest/gtest.h>
#include <cmath>
#include "layers/generate.h"
#include "layers/lolcats.h"
#include "optim/adamw.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {

using testing::rand64;

// y_i = (Σ_{i-w<j<=i} γ e^{τ q_i·k_j - m_i} v_j + Σ_{j<=i-w} φq_i·φk_j v_j) / (the same without v_j)
std::vector<double> naive_lolcats(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& fq,
                                  const Tensor& fk, const Tensor& gamma, int64_t w, double tau) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3), Dv = v.size(3), F = fq.size(3);
  std::vector<double> out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        auto score = [&](int64_t j) {
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += q.at({b, h, i, d}) * k.at({b, h, j, d});
          return tau * s;
        };
        double m = -INFINITY;
        for (int64_t j = std::max<int64_t>(0, i - w + 1); j <= i; ++j) m = std::max(m, score(j));
        std::vector<double> num(static_cast<size_t>(Dv), 0.0);
        double den = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double a = 0;
          if (i - j < w) {
            a = gamma.at({h}) * std::exp(score(j) - m);
          } else {
            for (int64_t f = 0; f < F; ++f) a += fq.at({b, h, i, f}) * fk.at({b, h, j, f});
          }
          for (int64_t e = 0; e < Dv; ++e) num[static_cast<size_t>(e)] += a * v.at({b, h, j, e});
          den += a;
        }
        for (double x : num) out.push_back(x / den);
      }
  return out;
}

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double max_err = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_err = std::max(max_err, std::fabs(a[i] - b[i]));
    max_abs = std::max(max_abs, std::fabs(b[i]));
  }
  EXPECT_LT(max_err, tol * std::max(1.0, max_abs)) << what;
  EXPECT_GT(max_abs, 1e-3) << what << ": outputs too small to prove anything";
}

TEST(Lolcats, JointNormaliserEqualsNaiveOracle) {
  const int64_t B = 2, H = 2, D = 4, Dv = 3, F = 6;
  for (int64_t L : {1, 5, 13})
    for (int64_t w : {1, 3, 4, 20}) {
      Tensor q = rand64({B, H, L, D}, 1, -2, 2), k = rand64({B, H, L, D}, 2, -2, 2), v = rand64({B, H, L, Dv}, 3);
      Tensor fq = rand64({B, H, L, F}, 4, 0.01, 1), fk = rand64({B, H, L, F}, 5, 0.01, 1);
      Tensor gamma = rand64({H}, 6, 0.05, 0.95);
      LolcatsResult r = lolcats_attention(q, k, v, fq, fk, gamma, w, 0.7, Tensor(), true, 4);
      expect_close(r.out.to_vector(), naive_lolcats(q, k, v, fq, fk, gamma, w, 0.7), 1e-12,
                   "L " + std::to_string(L) + " w " + std::to_string(w));
    }
}

TEST(Lolcats, GradcheckF64) {
  const int64_t L = 7;
  Tensor gamma = rand64({2}, 16, 0.1, 0.9);
  testing::expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return lolcats_attention(in[0], in[1], in[2], in[3], in[4], in[5], 3, 0.9, Tensor(), true, 2).out;
      },
      {rand64({1, 2, L, 3}, 11), rand64({1, 2, L, 3}, 12), rand64({1, 2, L, 2}, 13), rand64({1, 2, L, 4}, 14, 0.1, 1),
       rand64({1, 2, L, 4}, 15, 0.1, 1), gamma},
      1e-6);
}

ModelConfig teacher_config() {
  ModelConfig c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_kv_heads = 2;  // grouped-query: keys repeated before the feature map
  c.n_layers = 2;
  c.mlp_hidden = 24;
  c.layer_pattern = "S";
  c.dtype = DType::f64;
  c.init_std = 0.3;  // peaked attention: a wrong mask or normaliser shows
  return c;
}

Tensor ids_of(int64_t B, int64_t T, int64_t vocab, int64_t seed) {
  std::vector<double> ids;
  for (int64_t i = 0; i < B * T; ++i) ids.push_back(static_cast<double>((i * 7 + seed * 13 + (i * i) % 5) % vocab));
  return from_vector(ids, {B, T}, DType::i64);
}

std::unique_ptr<HybridLM> copy_of(const HybridLM& m) {
  auto c = std::make_unique<HybridLM>(m.cfg);
  c->load_state_dict(m.state_dict());
  return c;
}

TEST(Lolcats, WholeSequenceWindowIsTheTeacher) {
  HybridLM teacher(teacher_config());
  const int64_t T = 9;
  Tensor ids = ids_of(2, T, 40, 1);
  NoGradGuard ng;
  const std::vector<double> want = teacher.forward(ids).to_vector();
  for (bool linear : {false, true}) {
    auto student = copy_of(teacher);
    LolcatsOptions o;
    o.window = T;  // every key of every query in the window: the linear part is empty (or off)
    o.linear = linear;
    o.feature_dim = 3;
    EXPECT_EQ(convert_to_lolcats(*student, "", o, 7), (std::vector<int64_t>{0, 1}));
    expect_close(student->forward(ids).to_vector(), want, 1e-12, linear ? "linear on" : "linear off");
  }
  // and a window shorter than the sequence does change the model (the check above can fail)
  auto student = copy_of(teacher);
  LolcatsOptions o;
  o.window = 2;
  o.feature_dim = 3;
  convert_to_lolcats(*student, "", o, 7);
  const std::vector<double> got = student->forward(ids).to_vector();
  double diff = 0;
  for (size_t i = 0; i < got.size(); ++i) diff = std::max(diff, std::fabs(got[i] - want[i]));
  EXPECT_GT(diff, 1e-3);
}

// Runs `model` over ids [B, T] in pieces of the given lengths (summing to T), carrying the caches;
// -> the logits of all pieces joined, [B, T, V].
Tensor forward_in_pieces(HybridLM& model, const Tensor& ids, const std::vector<int64_t>& lengths,
                         std::vector<MixerCache>& caches) {
  std::vector<Tensor> pieces;
  int64_t t = 0;
  for (int64_t n : lengths) {
    pieces.push_back(model.forward(ids.narrow(1, t, n), &caches));
    t += n;
  }
  EXPECT_EQ(t, ids.size(1));
  return cat(pieces, 1);
}

// Piece lengths summing to T: `head` first, then `cycle` repeated (the last piece cut to fit).
std::vector<int64_t> schedule(int64_t T, const std::vector<int64_t>& head, const std::vector<int64_t>& cycle) {
  std::vector<int64_t> out;
  int64_t t = 0;
  for (size_t i = 0; t < T; ++i) {
    const int64_t n = std::min(T - t, i < head.size() ? head[i] : cycle[(i - head.size()) % cycle.size()]);
    out.push_back(n);
    t += n;
  }
  return out;
}

TEST(Lolcats, DecodingWithTheCacheEqualsTheFullForward) {
  HybridLM teacher(teacher_config());
  NoGradGuard ng;
  for (int64_t w : {1, 2, 3, 5})
    for (bool linear : {true, false}) {
      auto student = copy_of(teacher);
      LolcatsOptions o;
      o.window = w;
      o.feature_dim = 4;
      o.chunk = 2;
      o.linear = linear;
      convert_to_lolcats(*student, "", o, 3);
      const int64_t B = 2, T = 3 * w + 5;  // the linear state takes in keys for over 2w steps
      Tensor ids = ids_of(B, T, 40, w);
      const std::vector<double> full = student->forward(ids).to_vector();
      const std::vector<std::pair<std::string, std::vector<int64_t>>> schedules = {
          // the decode path only: one token at a time from an empty cache
          {"one at a time", schedule(T, {}, {1})},
          // decode-path chunks of up to w tokens, starting below the window and crossing it
          {"chunks", schedule(T, {2}, {w, 1, std::max<int64_t>(1, w / 2), std::max<int64_t>(1, w - 1)})},
          // blocked prefill longer than the window, a blocked step over the cache, then decoding
          {"prefill", schedule(T, {w + 2, w + 1}, {1})},
      };
      for (const auto& [name, lengths] : schedules) {
        std::vector<MixerCache> caches;
        const std::string what = name + ", w " + std::to_string(w) + (linear ? "" : ", window only");
        expect_close(forward_in_pieces(*student, ids, lengths, caches).to_vector(), full, 1e-11, what);
        for (const MixerCache& c : caches) {  // O(w) memory, not O(T)
          EXPECT_EQ(c.pos, T) << what;
          EXPECT_EQ(c.k.shape(), (Shape{B, 2, w, 4})) << what;
          if (linear) {
            ASSERT_EQ(c.states.size(), 1u) << what;
            EXPECT_EQ(c.states[0].shape(), (Shape{B, 4, 2 * o.feature_dim, 5})) << what;
          }
        }
      }
    }
}

TEST(Lolcats, PromptThenGreedyDecodingEqualsTheFullForward) {
  NoGradGuard ng;
  for (auto [w, kv_heads] : {std::pair<int64_t, int64_t>{2, 2}, {4, 4}}) {  // grouped-query and not
    ModelConfig cfg = teacher_config();
    cfg.n_kv_heads = kv_heads;
    HybridLM teacher(cfg);
    auto student = copy_of(teacher);
    LolcatsOptions o;
    o.window = w;
    o.feature_dim = 4;
    o.chunk = 3;
    convert_to_lolcats(*student, "", o, 11);
    const int64_t P = 2 * w + 3, N = 3 * w + 2;  // prompt prefilled by the blocked path, N decode steps
    Tensor prompt_ids = ids_of(1, P, 40, 5);
    std::vector<MixerCache> caches;
    std::vector<Tensor> logits = {student->forward(prompt_ids, &caches)};
    std::vector<double> tokens = prompt_ids.to_vector();
    SamplingOptions greedy;
    greedy.temperature = 0;
    Generator gen(0);
    for (int64_t i = 0; i < N; ++i) {
      Tensor last = logits.back().narrow(1, logits.back().size(1) - 1, 1).reshape({-1});
      tokens.push_back(static_cast<double>(sample_token(last, greedy, gen)));
      logits.push_back(student->forward(from_vector({tokens.back()}, {1, 1}, DType::i64), &caches));
    }
    // the full forward over the prompt and the N generated tokens gives the same logits everywhere
    Tensor all = from_vector(tokens, {1, P + N}, DType::i64);
    expect_close(cat(logits, 1).to_vector(), student->forward(all).to_vector(), 1e-11, "w " + std::to_string(w));
    // and generate() (its own caches) continues the prompt with the same tokens
    greedy.max_new_tokens = N;
    std::vector<int64_t> want(tokens.begin(), tokens.end()), prompt(tokens.begin(), tokens.begin() + P);
    EXPECT_EQ(generate(*student, prompt, greedy), want) << "w " << w;
  }
}

TEST(Lolcats, AttentionTransferLowersHeldOutMse) {
  ModelConfig c = teacher_config();
  c.dtype = DType::f32;
  c.init_std = 0.1;
  HybridLM teacher(c);
  auto student = copy_of(teacher);
  LolcatsOptions o;
  o.window = 4;
  o.feature_dim = 8;
  const std::vector<int64_t> layers = convert_to_lolcats(*student, "", o, 5);
  set_trainable(*student, false);
  NamedTensors params = attention_transfer_parameters(*student);
  ASSERT_EQ(params.size(), 6u);  // q_map, k_map, window_factors of two layers
  const int64_t T = 24;
  auto held_out = teacher_mixer_activations(teacher, ids_of(2, T, 40, 99), layers);
  auto held_out_mse = [&] {
    NoGradGuard ng;
    return attention_transfer_loss(*student, held_out).item();
  };
  const double before = held_out_mse();
  AdamWOptions a;
  a.lr = 1e-2;
  a.weight_decay = 0;
  AdamW opt(params, a);
  for (int step = 0; step < 40; ++step) {
    opt.zero_grad();
    attention_transfer_loss(*student, teacher_mixer_activations(teacher, ids_of(2, T, 40, step), layers)).backward();
    opt.step();
  }
  const double after = held_out_mse();
  EXPECT_LT(after, 0.7 * before) << "before " << before << " after " << after;
  for (auto& [name, p] : student->named_parameters())  // nothing else moved
    if (name.find("_map") == std::string::npos && name.find("window_factors") == std::string::npos) {
      auto want = teacher.state_dict().at(name).to_vector(), got = p.to_vector();
      EXPECT_EQ(want, got) << name;
    }
}

}  // namespace
}  // namespace skein
