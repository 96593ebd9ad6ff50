// demo.cpp — the end-to-end demo of the autograd core: a tiny byte-level MLP language
// model (3 bytes of context -> next byte) trained with plain SGD on an embedded text,
// printing a falling loss. The training-program issue replaces this with `skein train`.
#include <cmath>
#include <cstdio>
#include <string>
#include "core/ops.h"
#include "core/threadpool.h"

using namespace skein;

static const char* kText =
    "In the beginning God created the heaven and the earth. And the earth was without form, "
    "and void; and darkness was upon the face of the deep. And the Spirit of God moved upon "
    "the face of the waters. And God said, Let there be light: and there was light. And God "
    "saw the light, that it was good: and God divided the light from the darkness. And God "
    "called the light Day, and the darkness he called Night. And the evening and the morning "
    "were the first day.";

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::stoi(argv[1]) : 300;
  const int64_t C = 3, V = 256, E = 32, H = 128, B = 64;
  const std::string text(kText);
  const int64_t n = static_cast<int64_t>(text.size()) - C;

  Generator gen(1234);
  Tensor emb = mul(randn({V, E}, gen), 0.1);
  Tensor w1 = mul(randn({C * E, H}, gen), 1.0 / std::sqrt(double(C * E)));
  Tensor w2 = mul(randn({H, V}, gen), 1.0 / std::sqrt(double(H)));
  Tensor gain = ones({C * E});
  std::vector<Tensor> params{emb, w1, w2, gain};
  for (Tensor& p : params) p.requires_grad_();

  std::printf("skein demo: byte-level MLP LM, %lld params, %d threads, %d steps\n",
              static_cast<long long>(V * E + C * E * H + H * V + C * E), num_threads(), steps);
  const double lr = 0.5;
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step <= steps; ++step) {
    // A batch of B random positions: context bytes [B, C] and next byte [B].
    Tensor pos = uniform({B}, gen, 0.0, static_cast<double>(n), DType::f64);
    Tensor ctx = Tensor::empty({B, C}, DType::i64), tgt = Tensor::empty({B}, DType::i64);
    for (int64_t b = 0; b < B; ++b) {
      int64_t p = static_cast<int64_t>(pos.data<double>()[b]);
      for (int64_t c = 0; c < C; ++c) ctx.data<int64_t>()[b * C + c] = static_cast<unsigned char>(text[p + c]);
      tgt.data<int64_t>()[b] = static_cast<unsigned char>(text[p + C]);
    }
    // forward
    Tensor x = rms_norm(embedding(emb, ctx).reshape({B, C * E}), gain);
    Tensor logits = matmul(gelu(matmul(x, w1)), w2);
    Tensor loss = cross_entropy(logits, tgt);
    // backward + SGD step
    for (Tensor& p : params) p.zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;
      for (Tensor& p : params) add_(p, p.grad(), -lr);
    }
    if (step == 0) first_loss = loss.item();
    last_loss = loss.item();
    if (step % 25 == 0) std::printf("step %4d  loss %.4f\n", step, loss.item());
  }
  // Exit status says whether training worked: the loss must at least halve.
  const bool ok = last_loss < 0.5 * first_loss;
  std::printf("%s: loss %.4f -> %.4f\n", ok ? "ok" : "FAILED", first_loss, last_loss);
  return ok ? 0 : 1;
}
