// test_state_dict.cpp — optimizer state dicts: keys, a save / load round trip that resumes
// bit for bit, and load errors that name the key and both shapes without changing anything.
#include <gtest/gtest.h>
#include "core/ops.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

namespace skein {
namespace {

// A small model's parameters (f32, as in training), fresh and identical for a given seed.
NamedParams make_params() {
  return {{"blocks.0.mixer.q_proj.weight", randn({3, 4}, 1)},
          {"blocks.0.norm.gain", randn({4}, 2)},
          {"head.bias", randn({3}, 3)}};
}
// The gradient of each parameter at a given step: deterministic, so two runs see the same.
void set_grads(const NamedParams& ps, int64_t step) {
  for (size_t i = 0; i < ps.size(); ++i)
    ps[i].second.impl()->grad = randn(ps[i].second.shape(), 1000 + 10 * step + i).impl_ptr();
}

const LrSchedule kSched{.peak_lr = 1e-2, .min_lr = 1e-3, .warmup = 2, .total = 6, .decay = LrDecay::cosine};

template <typename Opt>
void train(Opt& opt, const NamedParams& ps, int64_t steps) {
  for (int64_t s = 0; s < steps; ++s) {
    opt.set_lr(lr_at(kSched, opt.step_count()));  // depends on the restored step count
    set_grads(ps, opt.step_count());
    opt.step();
  }
}

std::string load_error(Optimizer& opt, const std::map<std::string, Tensor>& sd) {
  try {
    opt.load_state_dict(sd);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(StateDict, AdamWKeys) {
  NamedParams ps = make_params();
  AdamW opt(ps);
  auto sd = opt.state_dict();
  EXPECT_EQ(sd.size(), 1u + 3 * ps.size());
  EXPECT_EQ(sd.at("step").dim(), 0);
  EXPECT_EQ(sd.at("step").dtype(), DType::i64);
  EXPECT_EQ(sd.at("exp_avg.blocks.0.mixer.q_proj.weight").shape(), (Shape{3, 4}));
  EXPECT_EQ(sd.at("exp_avg_sq.head.bias").shape(), (Shape{3}));
  EXPECT_EQ(sd.at("step.blocks.0.norm.gain").dim(), 0);
}

template <typename Opt>
void expect_round_trip(typename Opt::Options_t options) {
  // Uninterrupted: 4 steps.
  NamedParams a = make_params();
  Opt full(a, options);
  train(full, a, 4);
  // Interrupted: 3 steps, save, fresh parameters + optimizer, load, 1 more step.
  NamedParams b = make_params();
  std::map<std::string, Tensor> saved;
  NamedParams restored;
  {
    Opt first(b, options);
    train(first, b, 3);
    for (auto& [k, t] : first.state_dict()) saved[k] = t.clone();  // as a checkpoint would
    for (auto& [n, p] : b) restored.emplace_back(n, p.clone());
  }
  Opt second(restored, options);
  second.load_state_dict(saved);
  EXPECT_EQ(second.step_count(), 3);
  train(second, restored, 1);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].second.to_vector(), restored[i].second.to_vector()) << a[i].first;  // bit for bit
  auto sa = full.state_dict(), sb = second.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (auto& [k, t] : sa) EXPECT_EQ(t.to_vector(), sb.at(k).to_vector()) << k;
}

struct AdamWT : AdamW {
  using Options_t = AdamWOptions;
  using AdamW::AdamW;
};
struct SGDT : SGD {
  using Options_t = SGDOptions;
  using SGD::SGD;
};

TEST(StateDict, AdamWRoundTripResumesBitForBit) { expect_round_trip<AdamWT>(AdamWOptions{}); }

TEST(StateDict, SGDRoundTripResumesBitForBit) {
  SGDOptions o;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 0.01;
  expect_round_trip<SGDT>(o);
}

TEST(StateDict, ResumeWithoutLoadingDiffers) {
  // The round trip above can fail: skipping the load changes the result.
  NamedParams a = make_params(), b = make_params();
  AdamW full(a), first(b);
  train(full, a, 4);
  train(first, b, 3);
  NamedParams restored;
  for (auto& [n, p] : b) restored.emplace_back(n, p.clone());
  AdamW fresh(restored);
  train(fresh, restored, 1);
  EXPECT_NE(a[0].second.to_vector(), restored[0].second.to_vector());
}

TEST(StateDict, LoadErrorsNameKeyAndShapesAndChangeNothing) {
  NamedParams ps = make_params();
  AdamW opt(ps);
  train(opt, ps, 2);
  const auto before = opt.state_dict();
  auto snapshot = [&] {
    std::map<std::string, std::vector<double>> m;
    for (auto& [k, t] : opt.state_dict()) m[k] = t.to_vector();
    return m;
  };
  const auto values = snapshot();

  auto bad_shape = before;
  bad_shape["exp_avg.blocks.0.mixer.q_proj.weight"] = zeros({4, 3});
  bad_shape["exp_avg.head.bias"] = zeros({5});  // a second mismatch: the first one is named
  std::string msg = load_error(opt, bad_shape);
  EXPECT_NE(msg.find("'exp_avg.blocks.0.mixer.q_proj.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4,3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3,4]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("AdamW"), std::string::npos) << msg;

  auto missing = before;
  missing.erase("exp_avg_sq.head.bias");
  msg = load_error(opt, missing);
  EXPECT_NE(msg.find("'exp_avg_sq.head.bias'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3]"), std::string::npos) << msg;

  auto extra = before;
  extra["momentum.head.bias"] = zeros({3});  // e.g. an SGD checkpoint's key
  msg = load_error(opt, extra);
  EXPECT_NE(msg.find("unexpected key 'momentum.head.bias'"), std::string::npos) << msg;

  auto bad_step = before;
  bad_step["step"] = scalar(-1, DType::i64);
  msg = load_error(opt, bad_step);
  EXPECT_NE(msg.find("'step'"), std::string::npos) << msg;

  auto bad_counter_shape = before;
  bad_counter_shape["step.head.bias"] = zeros({1}, DType::i64);
  msg = load_error(opt, bad_counter_shape);
  EXPECT_NE(msg.find("'step.head.bias'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[]"), std::string::npos) << msg;

  // A partly valid dict with a late error wrote nothing.
  auto late = before;
  late["exp_avg.blocks.0.norm.gain"] = ones({4});
  late["step"] = scalar(99, DType::i64);
  late["step.head.bias"] = scalar(0.5, DType::f64);  // not an integer count
  EXPECT_NE(load_error(opt, late), "(no error)");
  EXPECT_EQ(opt.step_count(), 2);
  EXPECT_EQ(snapshot(), values);

  // Float dtypes convert: an f64 copy of the state loads into the f32 optimizer.
  std::map<std::string, Tensor> as64;
  for (auto& [k, t] : before) as64[k] = is_floating(t.dtype()) ? t.to(DType::f64) : t;
  EXPECT_EQ(load_error(opt, as64), "(no error)");
  EXPECT_EQ(snapshot(), values);
}

}  // namespace
}  // namespace skein
