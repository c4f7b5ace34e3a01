// Helpers shared by the tests: where the shared data lives, temp dirs, running the CLI.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rankrl::test {

// ../shared/data relative to the source tree.
inline std::string shared_data() { return std::string(RANKRL_SOURCE_DIR) + "/../shared/data"; }

inline std::string data_file(const std::string& rel) { return shared_data() + "/" + rel; }

// The shared files most tests use (relative to shared_data(); pass them to data_file()).
inline constexpr const char* kBin = "stories260K/stories260K.bin";  // the real trained model
inline constexpr const char* kTok = "stories260K/tok512.bin";       // its tokenizer
inline constexpr const char* kVal = "tinystories/tinystories_val.txt";

// Skips the current test (with a clear message) when the shared data is absent.
#define RANKRL_REQUIRE_DATA(rel)                                                        \
  do {                                                                                  \
    if (!std::filesystem::exists(::rankrl::test::data_file(rel)))                      \
      GTEST_SKIP() << "shared data missing: " << ::rankrl::test::data_file(rel)        \
                   << " (expected ../shared/data beside the repository)";              \
  } while (0)

// A fresh empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs build/rankrl with `args` (shell-quoted by the caller where needed), capturing output.
CliResult run_cli(const std::string& args);

std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& bytes);

// The small ranking splits of the search tests: the first 48 items of the shared ARC-Easy file,
// 16 each into dir/rkd.jsonl, dir/vrkd.jsonl and dir/test.jsonl (dir is created).
void write_small_task_splits(const std::string& dir);

// A search's log.jsonl with every line's "seconds" removed: what must repeat exactly.
std::vector<nlohmann::json> log_without_times(const std::string& path);

}  // namespace rankrl::test
