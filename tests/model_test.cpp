// The forward pass against independent references: the stories260K oracle published with
// llama2.c (data README), the converted HF Llama directory, and a Python GPT-2 reference.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <nlohmann/json.hpp>

#include "model/convert.h"
#include "model/generate.h"
#include "model/model.h"
#include "test_util.h"

namespace rankrl {
namespace {

using test::data_file;

const char* kStoriesBin = "stories260K/stories260K.bin";
const char* kStoriesTok = "stories260K/tok512.bin";
const char* kOracleText = "One day, a clever fox found a shiny key under the old oak tree.";

Model load_stories() { return load_model(data_file(kStoriesBin), data_file(kStoriesTok)); }

double summed_nll(const Transformer& net, const std::vector<int32_t>& ids) {
  c10::InferenceMode guard;
  at::Tensor t = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).unsqueeze(0);
  at::Tensor logp = at::log_softmax(net.forward(t)[0], -1);
  double s = 0;
  for (size_t i = 1; i < ids.size(); ++i) s -= logp[i - 1][ids[i]].item<double>();
  return s;
}

TEST(Stories260K, OracleNegativeLogLikelihood) {
  RANKRL_REQUIRE_DATA(kStoriesBin);
  Model m = load_stories();
  std::vector<int32_t> ids = m.tokenizer->encode_with_bos(kOracleText);
  ASSERT_EQ(ids.size(), 35u);
  EXPECT_NEAR(summed_nll(*m.net, ids), 54.404121, 1e-3);
}

TEST(Stories260K, GreedyGenerationFromBos) {
  RANKRL_REQUIRE_DATA(kStoriesBin);
  Model m = load_stories();
  GenerateOptions g;
  g.max_new_tokens = 60;
  std::vector<int32_t> out = generate(*m.net, {m.tokenizer->bos_id()}, g);
  std::string text = m.tokenizer->decode(out);
  EXPECT_EQ(text.rfind("Once upon a time, there was a little girl named Lily. She loved to play "
                       "outside in the park.", 0), 0u)
      << text;
}

TEST(Stories260K, KvCacheMatchesFullForward) {
  RANKRL_REQUIRE_DATA(kStoriesBin);
  Model m = load_stories();
  c10::InferenceMode guard;
  std::vector<int32_t> ids = m.tokenizer->encode_with_bos(kOracleText);
  at::Tensor t = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).unsqueeze(0);
  at::Tensor full = m.net->forward(t);
  KVCache cache;
  at::Tensor a = m.net->forward(t.narrow(1, 0, 20), &cache);
  at::Tensor b = m.net->forward(t.narrow(1, 20, 15), &cache);
  EXPECT_LT((at::cat({a, b}, 1) - full).abs().max().item<double>(), 1e-4);
}

TEST(Stories260K, BatchedRowsEqualSingleRows) {
  RANKRL_REQUIRE_DATA(kStoriesBin);
  Model m = load_stories();
  c10::InferenceMode guard;
  at::Tensor batch = at::randint(3, 512, {3, 40}, at::TensorOptions().dtype(at::kLong));
  at::Tensor logits = m.net->forward(batch);
  for (int64_t b = 0; b < 3; ++b)
    EXPECT_LT((m.net->forward(batch.narrow(0, b, 1))[0] - logits[b]).abs().max().item<double>(), 1e-4);
}

TEST(Convert, HfLlamaDirectoryGivesTheSameLogits) {
  RANKRL_REQUIRE_DATA(kStoriesBin);
  test::TempDir dir;
  convert_llama2c(data_file(kStoriesBin), data_file(kStoriesTok), dir.path());
  Model original = load_stories();
  Model converted = load_model(dir.path());
  EXPECT_FALSE(converted.config().rope_interleaved);
  EXPECT_EQ(converted.checkpoint.format, "safetensors");
  std::vector<int32_t> ids = original.tokenizer->encode_with_bos(kOracleText);
  EXPECT_EQ(converted.tokenizer->encode_with_bos(kOracleText), ids);
  c10::InferenceMode guard;
  at::Tensor t = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).unsqueeze(0);
  double diff = (original.net->forward(t) - converted.net->forward(t)).abs().max().item<double>();
  EXPECT_LT(diff, 1e-4);
  EXPECT_NEAR(summed_nll(*converted.net, ids), 54.404121, 1e-3);
}

TEST(Gpt2, LogitsMatchPythonReference) {
  RANKRL_REQUIRE_DATA("gpt2-random-tiny/model.safetensors");
  nlohmann::json ref = nlohmann::json::parse(
      test::read_text(std::string(RANKRL_SOURCE_DIR) + "/tests/expected/gpt2_logits.json"));
  Model m = load_model(data_file("gpt2-random-tiny"));
  std::vector<int64_t> ids = ref["input_ids"].get<std::vector<int64_t>>();
  c10::InferenceMode guard;
  at::Tensor logits = m.net->forward(at::tensor(ids).unsqueeze(0))[0];
  auto first = ref["logits_first64"].get<std::vector<std::vector<double>>>();
  auto lse = ref["logsumexp"].get<std::vector<double>>();
  auto argmax = ref["argmax"].get<std::vector<int64_t>>();
  ASSERT_EQ(first.size(), ids.size());
  for (size_t t = 0; t < ids.size(); ++t) {
    for (size_t v = 0; v < first[t].size(); ++v)
      EXPECT_NEAR(logits[t][v].item<double>(), first[t][v], 1e-4) << "t=" << t << " v=" << v;
    EXPECT_NEAR(at::logsumexp(logits[t], 0).item<double>(), lse[t], 1e-4);
    EXPECT_EQ(logits[t].argmax().item<int64_t>(), argmax[t]);
  }
}

}  // namespace
}  // namespace rankrl
