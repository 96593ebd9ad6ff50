// test_cuda_coverage.cpp — every op declared in core/ops.h has a CUDA path and a CUDA test: the
// list below names, per op, the kernel family its CUDA path uses (or the device ops it is composed
// of, for the mixers whose fused CUDA kernels have not landed) and the test that compares it with
// the CPU. The test reads core/ops.h, so a new op without an entry fails here, on every
// machine (no GPU needed). With a GPU, the CUDA kernel table must have every entry filled.
#include <gtest/gtest.h>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include "core/backend.h"
#include "core/kernels/kernels.h"
#include "core/tensor.h"

namespace skein {
namespace {

// op -> {CUDA path, test in tests/cuda}
const std::map<std::string, std::pair<std::string, std::string>>& coverage() {
  static const std::map<std::string, std::pair<std::string, std::string>> m{
      {"add", {"map", "BinaryBroadcast"}}, {"sub", {"map", "BinaryBroadcast"}}, {"mul", {"map", "BinaryBroadcast"}},
      {"div", {"map", "BinaryBroadcast"}}, {"neg", {"map", "UnaryMath"}}, {"exp", {"map", "UnaryMath"}},
      {"log", {"map", "PositiveDomainMath"}}, {"sqrt", {"map", "PositiveDomainMath"}},
      {"rsqrt", {"map", "PositiveDomainMath"}}, {"pow", {"map", "PositiveDomainMath"}}, {"tanh", {"map", "UnaryMath"}},
      {"sigmoid", {"map", "UnaryMath"}}, {"silu", {"map", "UnaryMath"}}, {"gelu", {"map", "UnaryMath"}},
      {"relu", {"map", "UnaryMath"}}, {"elu", {"map", "UnaryMath"}}, {"softplus", {"map", "UnaryMath"}},
      {"log_sigmoid", {"map", "UnaryMath"}}, {"l2_normalize", {"l2_normalize", "UnaryMath"}},
      {"where", {"map", "WhereAndMaskedFill"}}, {"masked_fill", {"map", "WhereAndMaskedFill"}},
      {"fill_", {"map", "InPlace"}}, {"copy_", {"map + copies", "InPlace"}}, {"add_", {"map", "InPlace"}},
      {"mul_", {"map", "InPlace"}}, {"sum", {"reduce", "Reductions"}}, {"mean", {"reduce", "Reductions"}},
      {"max", {"reduce + put_along", "Reductions"}}, {"logsumexp", {"reduce", "Reductions"}},
      {"cumsum", {"cumsum", "Reductions"}}, {"matmul", {"gemm", "Matmul"}},
      {"matmul_f32", {"gemm", "Matmul"}},
      {"softmax", {"softmax_fwd/bwd", "SoftmaxAndCrossEntropy"}},
      {"log_softmax", {"softmax_fwd/bwd", "SoftmaxAndCrossEntropy"}},
      {"cross_entropy", {"cross_entropy_fwd/bwd", "SoftmaxAndCrossEntropy"}},
      {"embedding", {"gather_rows + scatter_rows", "EmbeddingAndScatterRowsAreDeterministic"}},
      {"scatter_rows", {"scatter_rows + gather_rows", "EmbeddingAndScatterRowsAreDeterministic"}},
      {"rms_norm", {"rms_norm_fwd/bwd", "RmsNormAndRope"}}, {"rope", {"rope", "RmsNormAndRope"}},
      {"dropout", {"philox_uniform + map", "DropoutDrawsTheSameMaskOnBothDevices"}},
      {"softmax_attention", {"attention_fwd/bwd", "SequenceLengthsAroundTheTiles"}},
      {"attention_block_forward", {"attention_fwd", "BlockForwardLseAndRowsThatSeeNothing"}},
      {"attention_merge_", {"attention_merge", "TwoBlockRingMergeEqualsFullAttention"}},
      {"attention_block_backward", {"attention_bwd", "TwoBlockRingMergeEqualsFullAttention"}},
      {"linear_attention", {"composed: matmul + map + cumsum", "MixersWithoutFusedKernels"}}, {"delta_rule", {"composed: WY form, matmul + map + cumsum", "MixersWithoutFusedKernels"}},
      {"cat", {"map (copy)", "JoinSplitAndViews"}}, {"stack", {"map (copy)", "JoinSplitAndViews"}},
      {"split", {"views", "JoinSplitAndViews"}},
      {"checkpoint", {"runs fn (device-agnostic)", "ComposedOps"}},
      {"short_conv", {"composed: shifted views + map", "MixersWithoutFusedKernels"}}, {"short_conv_tail", {"views + cat", "MixersWithoutFusedKernels"}},
      {"lm_head_cross_entropy", {"composed: gemm + cross_entropy (unfused)", "ComposedOps"}},
      {"swiglu_down", {"composed: map + gemm", "ComposedOps"}}};
  return m;
}

std::set<std::string> ops_declared_in_ops_h() {
  std::ifstream f(std::string(SKEIN_SOURCE_DIR) + "/core/ops.h");
  EXPECT_TRUE(f.good()) << "cannot read core/ops.h under " << SKEIN_SOURCE_DIR;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  // A declaration at the start of a line: a return type, the op's name, '('.
  const std::regex decl(R"(^(?:Tensor|void|std::vector<Tensor>|LinearAttentionResult|AttentionBlockResult)\s+(\w+)\()",
                        std::regex::multiline);
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), decl); it != std::sregex_iterator(); ++it)
    names.insert((*it)[1].str());
  return names;
}

TEST(CudaCoverage, EveryOpOfOpsHasACudaPathAndATest) {
  const std::set<std::string> declared = ops_declared_in_ops_h();
  ASSERT_GT(declared.size(), 40u) << "the parser found too few ops in core/ops.h";
  for (const std::string& op : declared)
    EXPECT_TRUE(coverage().count(op)) << "op '" << op << "' of core/ops.h has no CUDA path / test listed in "
                                      << "tests/cuda/test_cuda_coverage.cpp";
  for (const auto& [op, entry] : coverage())
    EXPECT_TRUE(declared.count(op)) << "'" << op << "' is listed but no longer declared in core/ops.h";
}

TEST(CudaCoverage, NoOpRunsOnHostCopies) {
  for (const auto& [op, entry] : coverage())
    EXPECT_NE(entry.first, "host-staged") << op << ": every op runs on the device (a kernel or device ops)";
}

TEST(CudaCoverage, TheCudaKernelTableIsComplete) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU visible";
  const kern::KernelTable& k = kern::kernels(Device::cuda);
  EXPECT_EQ(k.device, Device::cuda);
#define SKEIN_EXPECT_SET(member, impl) EXPECT_NE(k.member, nullptr) << #member;
  SKEIN_KERNEL_ENTRIES(SKEIN_EXPECT_SET)
#undef SKEIN_EXPECT_SET
}

TEST(CudaCoverage, CpuTableIsComplete) {  // the same list, checked everywhere
  const kern::KernelTable& k = kern::cpu_kernels();
#define SKEIN_EXPECT_SET(member, impl) EXPECT_NE(k.member, nullptr) << #member;
  SKEIN_KERNEL_ENTRIES(SKEIN_EXPECT_SET)
#undef SKEIN_EXPECT_SET
}

TEST(CudaCoverage, WithoutAGpuTheCudaDeviceIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is visible";
  try {
    Tensor t = Tensor::empty({2}, DType::f32, Device::cuda);
    FAIL() << "made a cuda tensor without a GPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device cuda"), std::string::npos) << e.what();
  }
  EXPECT_THROW(select_device("cuda", 0, false), DeviceUnavailable);
  EXPECT_THROW(select_device("cuda:3", 0, false), DeviceUnavailable);
  EXPECT_EQ(select_device("cpu", 0, false), Device::cpu);
}

}  // namespace
}  // namespace skein
