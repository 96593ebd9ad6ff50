// test_progress.cpp — the console progress line (launch/progress.h): the moving tokens/s over
// its window, the ETA, the duration and SI formats, what a terminal and a log file receive,
// and the step line's throughput / memory numbers.
#include <gtest/gtest.h>
#include <cstdio>
#include <string>
#include "launch/progress.h"

namespace skein {
namespace {

// What `fn` wrote to a temporary FILE*.
template <typename Fn>
std::string captured(Fn fn) {
  FILE* f = std::tmpfile();
  fn(f);
  std::fflush(f);
  std::rewind(f);
  std::string s;
  for (int c; (c = std::fgetc(f)) != EOF;) s.push_back(static_cast<char>(c));
  std::fclose(f);
  return s;
}

TEST(Progress, MovingTokensPerSecondForgetsStepsOutsideTheWindow) {
  ProgressLine p("train", 100, 0, ProgressLine::Mode::off, nullptr, 4);
  EXPECT_EQ(p.tokens_per_s(), 0.0);
  for (int i = 1; i <= 4; ++i) p.tick(i, 100, 1.0);  // 100 tok/s
  EXPECT_DOUBLE_EQ(p.tokens_per_s(), 100.0);
  p.tick(5, 100, 0.25);  // window: 1, 1, 1, 0.25 s
  EXPECT_DOUBLE_EQ(p.tokens_per_s(), 400.0 / 3.25);
  for (int i = 6; i <= 8; ++i) p.tick(i, 100, 0.25);  // the slow steps have left the window
  EXPECT_DOUBLE_EQ(p.tokens_per_s(), 400.0);
  EXPECT_DOUBLE_EQ(p.seconds_per_step(), 0.25);
  EXPECT_DOUBLE_EQ(p.eta_seconds(), 92 * 0.25);
}

TEST(Progress, EtaCountsFromTheResumedStep) {
  ProgressLine p("train", 50, 40, ProgressLine::Mode::off, nullptr);
  p.tick(41, 10, 2.0);
  EXPECT_DOUBLE_EQ(p.eta_seconds(), 9 * 2.0);
  p.tick(50, 10, 2.0);
  EXPECT_DOUBLE_EQ(p.eta_seconds(), 0.0);
}

TEST(Progress, Formats) {
  EXPECT_EQ(ProgressLine::duration(0.4), "0s");
  EXPECT_EQ(ProgressLine::duration(59.4), "59s");
  EXPECT_EQ(ProgressLine::duration(185), "3m05s");
  EXPECT_EQ(ProgressLine::duration(7620), "2h07m");
  EXPECT_EQ(ProgressLine::duration(-1), "?");
  EXPECT_EQ(si_number(950), "950");
  EXPECT_EQ(si_number(5234), "5.23k");
  EXPECT_EQ(si_number(12345), "12.3k");
  EXPECT_EQ(si_number(2.5e6), "2.50M");
  EXPECT_EQ(fmt("%s %05.1f", "x", 3.14159), "x 003.1");
}

TEST(Progress, TerminalRedrawsInPlaceAndClearsBeforeAPermanentLine) {
  const std::string out = captured([](FILE* f) {
    ProgressLine p("train", 10, 0, ProgressLine::Mode::tty, f);
    p.tick(1, 1000, 0.5, "loss 2.5000");
    p.line("step 1 | loss 2.5000");
    p.tick(10, 1000, 0.5);  // the last step is always drawn
    p.finish();
  });
  EXPECT_EQ(out,
            "\r\033[K[train] 1/10 10% | 2.00k tok/s | eta 5s | loss 2.5000"
            "\r\033[Kstep 1 | loss 2.5000\n"
            "\r\033[K[train] 10/10 100% | 2.00k tok/s | eta 0s"
            "\r\033[K");
}

TEST(Progress, ALogFileGetsOnlyThePlainLines) {
  const std::string out = captured([](FILE* f) {
    ProgressLine p("train", 10, 0, ProgressLine::Mode::plain, f);
    for (int i = 1; i <= 10; ++i) p.tick(i, 1000, 0.5);
    p.line("step 10 | loss 1.0000");
  });
  EXPECT_EQ(out, "step 10 | loss 1.0000\n");
  EXPECT_EQ(captured([](FILE* f) {
              ProgressLine p("eval", 3, 0, ProgressLine::Mode::off, f);
              p.tick(1, 1, 1);
              p.line("nothing");
            }),
            "");
}

TEST(Progress, StepStatsNameTheirNumbers) {
  const StepStats s = step_stats(2.5e9, 10.0);
  EXPECT_DOUBLE_EQ(s.gflops, 2.5);
  EXPECT_DOUBLE_EQ(s.pct_peak, 25.0);
  EXPECT_GT(s.rss_mb, 0.0);
  EXPECT_GE(s.mem_peak_mb, s.mem_mb);
  const auto m = s.scalars({{"loss", 1.0}});
  for (const char* k : {"loss", "gflops", "pct_peak", "mem_mb", "mem_peak_mb", "rss_mb"}) EXPECT_EQ(m.count(k), 1u) << k;
  EXPECT_NE(s.text(1234).find("1234 tok/s | 2.5 GFLOP/s (25% of sgemm) | mem "), std::string::npos) << s.text(1234);
  EXPECT_EQ(step_stats(1e9, 0).pct_peak, 0.0);  // unknown peak
}

}  // namespace
}  // namespace skein
