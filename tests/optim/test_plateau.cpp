// test_plateau.cpp — ReduceLROnPlateau against PyTorch's: the scale after each evaluation of a
// fixed metric sequence equals what torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min",
// factor=0.5, patience=2, threshold=0.1, cooldown=1, min_lr=0.2) gives an lr of 1 (torch
// 2.x, computed once and written here); the state survives a save / load round trip; bad
// options are refused by name.
#include <gtest/gtest.h>
#include "core/error.h"
#include "optim/plateau.h"
#include "optim/schedule.h"

namespace skein {
namespace {

TEST(Plateau, MatchesPyTorch) {
  const double metrics[] = {10, 9.5, 9.4, 9.3, 8.0, 8.0, 7.9, 7.9, 7.9, 7.9, 7.9, 7.9, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0};
  const double torch_lr[] = {1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2};
  PlateauOptions o;
  o.factor = 0.5;
  o.patience = 2;
  o.threshold = 0.1;
  o.cooldown = 1;
  o.min_scale = 0.2;
  ReduceLROnPlateau p(o), resumed(o);
  for (size_t i = 0; i < std::size(metrics); ++i) {
    EXPECT_DOUBLE_EQ(p.step(metrics[i]), torch_lr[i]) << "evaluation " << i;
    if (i == 8) {  // a checkpoint in the middle: the resumed one continues identically
      std::map<std::string, int64_t> c;
      p.save(c, "x.");
      resumed.load(c, "x.");
    }
    if (i > 8) {
      EXPECT_EQ(resumed.step(metrics[i]), p.scale()) << "evaluation " << i;
    }
  }
}

TEST(Plateau, ScheduleAndErrors) {
  LrSchedule s;
  s.peak_lr = 2.0;
  s.warmup = 4;
  s.decay = parse_lr_decay("plateau");
  EXPECT_DOUBLE_EQ(lr_at(s, 1), 1.0);    // warm-up as usual
  EXPECT_DOUBLE_EQ(lr_at(s, 100), 2.0);  // then constant: the caller multiplies in the plateau's scale
  EXPECT_STREQ(lr_decay_name(LrDecay::plateau), "plateau");
  PlateauOptions bad;
  bad.factor = 1.0;
  EXPECT_THROW(ReduceLROnPlateau{bad}, Error);
  std::map<std::string, int64_t> empty;
  ReduceLROnPlateau p;
  EXPECT_THROW(p.load(empty, "distill.plateau."), Error);
}

}  // namespace
}  // namespace skein
