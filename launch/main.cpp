// main.cpp — the `skein` command: git-style subcommands train, eval, generate, prep, sweep, distill,
// convert.
// `skein <cmd> --help` lists every option with its default; a bad flag prints the usage and
// exits 2; a skein::Error prints "skein: error: ..." and exits 1.
#include <mpi.h>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <algorithm>
#include <thread>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include "configs/loader.h"
#include "data/prep.h"
#include "data/tokenizer.h"
#include "core/backend.h"
#include "launch/checkpoint.h"
#include "launch/device_setup.h"
#include "launch/cli_checks.h"
#include "launch/distill.h"
#include "launch/hf_llama.h"
#include "launch/lm_items.h"
#include "launch/progress.h"
#include "launch/sweep.h"
#include "launch/trainer.h"
#include "layers/generate.h"
#include "core/threadpool.h"
#include "parallel/runtime.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace skein;

namespace {

// Bounds that keep a typo from starting a run that never ends.
constexpr int64_t kMaxEvalBatches = 1000000, kMaxGenerateTokens = 1000000;

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses args against `opts`; prints help and returns false on --help.
bool parse(const std::string& cmd, const std::vector<std::string>& args, po::options_description& opts,
           po::variables_map& vm) {
  opts.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(opts).run(), vm);
    if (vm.count("help")) {  // before notify: --help needs no required option
      std::cout << opts;
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::ostringstream os;
    os << "skein " << cmd << ": " << e.what() << "\n\n" << opts;
    throw Usage(os.str());
  }
  return true;
}

Config config_from(const po::variables_map& vm) {
  return load_config(vm["config"].as<std::string>(), vm["set"].as<std::vector<std::string>>());
}

// Rebuilds the run's config from a checkpoint (plus overrides) and loads its parameters.
std::pair<Config, std::unique_ptr<HybridLM>> model_from_checkpoint(const std::string& dir,
                                                                   const std::vector<std::string>& overrides) {
  CheckpointState st = load_checkpoint(dir);
  Config cfg = parse_config(st.config_yaml, dir + "/state.h5:config_yaml", overrides);
  resolve_model_inputs(cfg);  // model.input_dim comes from the data source
  std::unique_ptr<HybridLM> model;
  if (!cfg.distill.teacher.empty()) {
    model = load_student(dir);  // converted mixers
  } else {
    model = std::make_unique<HybridLM>(cfg.model);
    model->load_state_dict(st.model);
  }
  model->to(setup_device(cfg, 0));  // train.device (a checkpoint loads on any device)
  return {cfg, std::move(model)};
}

int cmd_train(const std::vector<std::string>& args) {
  po::options_description o("skein train: train a model from a YAML config");
  o.add_options()
      ("config", po::value<std::string>()->default_value("", "\"\""), "the experiment YAML (empty: all defaults)")
      ("set", po::value<std::vector<std::string>>()->default_value({}, "none")->composing(),
       "override a config key: --set section.key=value (repeatable)")
      ("resume", po::value<std::string>()->default_value("", "\"\""), "'auto' (newest checkpoint of the run) or a checkpoint folder")
      ("print-config", po::bool_switch(), "print the resolved config (always written to <train.run_dir>/config.yaml)");
  po::variables_map vm;
  if (!parse("train", args, o, vm)) return 0;
  console_options().print_config = vm["print-config"].as<bool>();
  const std::string resume = vm["resume"].as<std::string>();
  check_option(resume.empty() || resume == "auto" || fs::is_directory(resume) || fs::is_regular_file(resume), "--resume",
               "'" + resume + "'", "'auto' or an existing checkpoint folder");
  train(config_from(vm), resume);
  return 0;
}

int cmd_eval(const std::vector<std::string>& args) {
  po::options_description o("skein eval: evaluate a checkpoint on its run's validation data");
  o.add_options()
      ("checkpoint", po::value<std::string>()->required(), "a checkpoint folder (runs/x/checkpoints/ckpt-000200)")
      ("set", po::value<std::vector<std::string>>()->default_value({}, "none")->composing(), "override a config key")
      ("batches", po::value<int64_t>()->default_value(0), "validation batches (0: the config's train.eval_batches)")
      ("items", po::value<std::string>()->default_value("", "\"\""),
       "instead: score a loglikelihood task, JSONL {context, continuation} (launch/lm_items.h; as lm_eval does)");
  po::variables_map vm;
  if (!parse("eval", args, o, vm)) return 0;
  check_option_range<int64_t>("--batches", vm["batches"].as<int64_t>(), 0, kMaxEvalBatches);
  auto [cfg, model] = model_from_checkpoint(vm["checkpoint"].as<std::string>(), vm["set"].as<std::vector<std::string>>());
  DataSources data = make_data(cfg);
  if (const std::string items = vm["items"].as<std::string>(); !items.empty()) {
    SKEIN_CHECK(!data.tokenizer_identity.empty(), "eval --items: the run's data (", cfg.data.source, ") has no tokenizer");
    const LmItemsSummary s = score_lm_items(*model, *tokenizer_from_identity(data.tokenizer_identity), read_lm_items(items));
    for (const LmItemScore& i : s.items)
      std::printf("{\"loglikelihood\": %.17g, \"greedy\": %s, \"tokens\": %lld}\n", i.loglikelihood,
                  i.greedy ? "true" : "false", static_cast<long long>(i.tokens));
    std::printf("{\"acc\": %.17g, \"perplexity\": %.17g, \"items\": %zu}\n", s.acc, s.perplexity, s.items.size());
    return 0;
  }
  SKEIN_CHECK(data.val, "eval: ", cfg.data.path, " has no usable validation split");
  int64_t batches = vm["batches"].as<int64_t>() > 0 ? vm["batches"].as<int64_t>() : cfg.train.eval_batches;
  if (auto* loader = dynamic_cast<Loader*>(data.val.get())) {  // a token file's split is finite: one pass at most
    const int64_t whole = std::max<int64_t>(1, (loader->num_windows() + cfg.data.batch_size - 1) / cfg.data.batch_size);
    check_option(batches <= whole, "--batches", batches,
                 "the validation split of " + cfg.data.path + " holds " + std::to_string(whole) + " batches of " +
                     std::to_string(cfg.data.batch_size) + " sequences; at most that many");
  }
  RunSummary r = evaluate(*model, *data.val, cfg, batches);
  SKEIN_CHECK(std::isfinite(r.val_loss), "eval: the validation loss of ", vm["checkpoint"].as<std::string>(), " is ",
              r.val_loss, " (the weights overflow on this data; a checkpoint with non-finite weights is refused on load)");
  std::printf("{\"val_loss\": %.6f", r.val_loss);
  if (r.icl.empty()) std::printf(", \"val_ppl\": %.4f", r.val_ppl);  // a regression loss has no perplexity
  if (!r.metric_name.empty()) std::printf(", \"%s\": %.6f", r.metric_name.c_str(), r.metric);  // named by what it is
  std::printf(", \"batches\": %lld%s}\n", static_cast<long long>(batches),
              r.icl.empty() ? "" : (", \"icl_per_point\": " + icl_curves_json(r.icl)).c_str());
  return 0;
}

int cmd_generate(const std::vector<std::string>& args) {
  po::options_description o("skein generate: sample text from a checkpoint");
  o.add_options()
      ("checkpoint", po::value<std::string>()->required(), "a checkpoint folder")
      ("prompt", po::value<std::string>()->default_value("", "\"\""), "the text to continue")
      ("tokens", po::value<int64_t>()->default_value(200), "tokens to generate")
      ("temperature", po::value<double>()->default_value(0.8), "0 = greedy")
      ("top-k", po::value<int64_t>()->default_value(40), "sample among the k most likely (0 = all)")
      ("seed", po::value<uint64_t>()->default_value(0), "sampling seed");
  po::variables_map vm;
  if (!parse("generate", args, o, vm)) return 0;
  check_option_range<int64_t>("--tokens", vm["tokens"].as<int64_t>(), 1, kMaxGenerateTokens);
  check_option_finite("--temperature", vm["temperature"].as<double>(), 0.0, 100.0);
  check_option(vm["top-k"].as<int64_t>() >= 0, "--top-k", vm["top-k"].as<int64_t>(), "must be >= 0 (0: all)");
  auto [cfg, model] = model_from_checkpoint(vm["checkpoint"].as<std::string>(), {});
  check_option(vm["top-k"].as<int64_t>() <= cfg.model.vocab_size, "--top-k", vm["top-k"].as<int64_t>(),
               "must be <= the model's vocabulary, " + std::to_string(cfg.model.vocab_size));
  DataSources data = make_data(cfg);
  SKEIN_CHECK(!data.tokenizer_identity.empty(), "generate: the run's data (", cfg.data.source, ") has no tokenizer");
  auto tok = tokenizer_from_identity(data.tokenizer_identity);
  // The tokenizer's template ids too (e.g. Llama's BOS), as transformers' tokenizer(prompt) gives.
  std::vector<int64_t> prompt = tok->encode_with_template(vm["prompt"].as<std::string>());
  if (prompt.empty()) prompt.push_back(tok->eos_id());
  SamplingOptions so;
  so.max_new_tokens = vm["tokens"].as<int64_t>();
  so.temperature = vm["temperature"].as<double>();
  so.top_k = vm["top-k"].as<int64_t>();
  so.seed = vm["seed"].as<uint64_t>();
  std::printf("%s\n", tok->decode(generate(*model, prompt, so)).c_str());
  return 0;
}

int default_prep_threads() { return std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 1024); }

int cmd_prep(const std::vector<std::string>& args) {
  po::options_description o("skein prep: tokenize text files into an HDF5 token file");
  PrepOptions p;
  o.add_options()
      ("input", po::value<std::vector<std::string>>()->required()->composing(),
       "a file (text, JSONL; gzip or zstd compressed), a folder, a glob pattern, or - for stdin (repeatable)")
      ("out", po::value<std::string>()->required(), "the .h5 token file to write")
      ("tokenizer", po::value<std::string>()->default_value("bytes"), "bytes | bpe:path/to/tokenizer.json (skein's BPE) | hf:path/to/tokenizer.json (Hugging Face: GPT-2, Llama 2/3, Mistral, Qwen2; docs/TOKENIZERS.md)")
      ("train-tokenizer", po::value<int64_t>()->default_value(0), "train a byte-level BPE of this vocabulary size on the corpus")
      ("doc-separator", po::value<std::string>()->default_value("", "\"\""), "split files into documents at this string")
      ("val-fraction", po::value<double>()->default_value(0.05), "fraction of documents (or tokens) for validation")
      ("seed", po::value<uint64_t>()->default_value(1234), "validation split and tokenizer sample seed")
      ("text-field", po::value<std::string>()->default_value("text"), "JSONL inputs (.jsonl, .ndjson, also .gz / .zst): the field holding each document")
      ("threads", po::value<int>()->default_value(default_prep_threads()), "tokenising threads")
      ("allow-binary", po::bool_switch(), "tokenise inputs that look binary instead of refusing them");
  po::variables_map vm;
  if (!parse("prep", args, o, vm)) return 0;
  check_option_range("--threads", vm["threads"].as<int>(), 1, 1024);
  check_option_finite("--val-fraction", vm["val-fraction"].as<double>(), 0.0, 0.5);
  const int64_t vocab = vm["train-tokenizer"].as<int64_t>();
  check_option(vocab == 0 || (vocab >= 257 && vocab <= (1 << 20)), "--train-tokenizer", vocab,
               "0 (none) or a vocabulary size in [257, 1048576]: 256 byte symbols, merges and <|endoftext|>");
  p.inputs = vm["input"].as<std::vector<std::string>>();
  p.output = vm["out"].as<std::string>();
  p.tokenizer = vm["tokenizer"].as<std::string>();
  p.train_tokenizer_vocab = vm["train-tokenizer"].as<int64_t>();
  p.doc_separator = vm["doc-separator"].as<std::string>();
  p.val_fraction = vm["val-fraction"].as<double>();
  p.seed = vm["seed"].as<uint64_t>();
  p.text_field = vm["text-field"].as<std::string>();
  p.threads = vm["threads"].as<int>();
  p.allow_binary = vm["allow-binary"].as<bool>();
  PrepSummary s = prep(p);
  std::printf("prep: %s: %lld documents, %lld train + %lld val tokens from %lld bytes in %.1f s%s%s\n",
              s.output.c_str(), static_cast<long long>(s.documents), static_cast<long long>(s.train_tokens),
              static_cast<long long>(s.val_tokens), static_cast<long long>(s.bytes), s.seconds,
              s.tokenizer_path.empty() ? "" : ", tokenizer ", s.tokenizer_path.c_str());
  return 0;
}

int cmd_sweep(const std::vector<std::string>& args, const std::string& self) {
  po::options_description o("skein sweep: run a grid of configs and tabulate the results");
  o.add_options()
      ("config", po::value<std::string>()->required(), "the sweep YAML (see launch/sweep.h)")
      ("emit", po::value<std::string>()->default_value("", "\"\""), "print instead of running: 'commands' or 'slurm'")
      ("on-change", po::value<std::string>()->default_value("refuse"),
       "a started run whose settings differ from the sweep's: refuse (name them, run nothing) | rerun (old folder kept as <run>.stale-N)");
  po::variables_map vm;
  if (!parse("sweep", args, o, vm)) return 0;
  SweepPlan plan = load_sweep(vm["config"].as<std::string>());
  const std::string emit = vm["emit"].as<std::string>();
  if (emit == "commands") {
    for (auto& c : sweep_commands(plan, self)) std::printf("%s\n", c.c_str());
    return 0;
  }
  if (emit == "slurm") {
    std::printf("%s", slurm_array_script(plan, self).c_str());
    return 0;
  }
  SKEIN_CHECK(emit.empty(), "sweep: --emit must be 'commands' or 'slurm', got '", emit, "'");
  int failed = run_sweep(plan, [](const std::vector<std::string>& a) { return cmd_train(a); },
                         parse_on_change(vm["on-change"].as<std::string>()));
  std::printf("sweep: %zu runs, %d failed; results in %s\n", plan.runs.size(), failed, plan.out_dir.c_str());
  return failed ? 1 : 0;
}

int cmd_distill(const std::vector<std::string>& args) {
  po::options_description o("skein distill: linearise a softmax teacher into a linear / hybrid student (liger | lolcats)");
  o.add_options()
      ("config", po::value<std::string>()->required(), "the distill YAML (configs/distill-lolcats.yaml; distill.teacher names the teacher)")
      ("set", po::value<std::vector<std::string>>()->default_value({}, "none")->composing(),
       "override a config key: --set section.key=value (repeatable)")
      ("resume", po::value<std::string>()->default_value("", "\"\""), "'auto' (newest checkpoint of the run) or a checkpoint folder")
      ("print-config", po::bool_switch(), "print the resolved config (always written to <train.run_dir>/config.yaml)");
  po::variables_map vm;
  if (!parse("distill", args, o, vm)) return 0;
  console_options().print_config = vm["print-config"].as<bool>();
  distill(config_from(vm), vm["resume"].as<std::string>());
  return 0;
}

int cmd_convert(const std::vector<std::string>& args) {
  po::options_description o("skein convert: Hugging Face Llama folder <-> skein checkpoint (docs/HF_FORMAT.md)");
  o.add_options()
      ("from", po::value<std::string>()->required(), "hf (input: an HF Llama folder) | skein (input: a checkpoint folder)")
      ("input", po::value<std::string>()->required(), "the folder to read")
      ("output", po::value<std::string>()->required(), "the folder to write (must not exist or be empty)")
      ("set", po::value<std::vector<std::string>>()->default_value({}, "none")->composing(),
       "override a key of the config written along (e.g. data.path for eval/generate)")
      ("max-shard-bytes", po::value<int64_t>()->default_value(HfSaveOptions{}.max_shard_bytes),
       "--from skein: above this size the weights are sharded");
  po::variables_map vm;
  if (!parse("convert", args, o, vm)) return 0;
  const std::string from = vm["from"].as<std::string>(), in = vm["input"].as<std::string>(), out = vm["output"].as<std::string>();
  const auto overrides = vm["set"].as<std::vector<std::string>>();
  SKEIN_CHECK(from == "hf" || from == "skein", "convert: --from must be 'hf' or 'skein', got '", from, "'");
  check_option(vm["max-shard-bytes"].as<int64_t>() >= 1, "--max-shard-bytes", vm["max-shard-bytes"].as<int64_t>(),
               "must be >= 1");
  if (from == "hf") convert_hf_to_checkpoint(in, out, overrides);
  else convert_checkpoint_to_hf(in, out, overrides, vm["max-shard-bytes"].as<int64_t>());
  std::printf("convert: %s (%s) -> %s\n", in.c_str(), from.c_str(), out.c_str());
  return 0;
}

const char* kUsage =
    "usage: skein <command> [options]   (skein <command> --help for its options)\n"
    "commands:\n"
    "  train     train a model from a YAML config\n"
    "  eval      evaluate a checkpoint\n"
    "  generate  sample text from a checkpoint\n"
    "  prep      tokenize text into an HDF5 token file\n"
    "  sweep     run a grid of configs and tabulate the results\n"
    "  distill   linearise a softmax teacher into a linear / hybrid student\n"
    "  convert   Hugging Face Llama folder <-> skein checkpoint\n";

}  // namespace

int main(int argc, char** argv) {
  ensure_blas_thread_timeout(argv);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  // Under mpirun (or srun with PMI), every rank joins MPI; a plain run does not pay for it.
  std::optional<MpiRuntime> mpi;
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE")) mpi.emplace(argc, argv);
  const bool many = mpi && mpi->world_size() > 1;
  // A failing rank prints its message and takes the whole job down (no hang).
  auto fail = [&](const char* what) {
    if (many) std::fprintf(stderr, "skein: rank %d: error: %s\n", mpi->world_rank(), what);
    else std::fprintf(stderr, "skein: error: %s\n", what);
    std::fflush(stderr);
    if (many) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  };
  try {
    if (cmd == "train") return cmd_train(args);
    if (cmd == "eval") return cmd_eval(args);
    if (cmd == "generate") return cmd_generate(args);
    if (cmd == "prep") return cmd_prep(args);
    if (cmd == "sweep") return cmd_sweep(args, fs::absolute(argv[0]).string());
    if (cmd == "distill") return cmd_distill(args);
    if (cmd == "convert") return cmd_convert(args);
    std::fprintf(stderr, "skein: unknown command '%s'\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const Usage& u) {
    std::fprintf(stderr, "%s", u.what());
    return 2;
  } catch (const DeviceUnavailable& e) {  // asked for a device this machine lacks: like a usage error
    fail(e.what());
    return 2;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
