// The README's "tour of the CLI" runs as written: this test reads the tour's code block out of
// README.md, turns it into a shell script (optional `[...]` parts left out; the placeholders FILE
// and `...`, and the TinyStories validation text, replaced as `--text` by a 40 KB head of that
// text) and runs it from a scratch copy of the repository layout (build/rankrl and ../shared).
// Editing the tour changes what this test runs.
// Then it checks identities the tour's outputs must satisfy: a converted checkpoint and an
// exported dense one score the same perplexity as their sources, and compression costs some.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <regex>
#include <sstream>

#include "test_util.h"

namespace rankrl::test {
namespace {

namespace fs = std::filesystem;

// The tour's --text: a 40 KB head of the TinyStories validation text, written into the scratch
// repository (where the tour runs).
constexpr const char* kTourText = "head.txt";

// The indented lines of the first code block after the "## A tour of the CLI" heading.
std::vector<std::string> tour_lines(const std::string& readme) {
  std::istringstream in(readme);
  std::string line;
  bool in_section = false, in_block = false;
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    if (line.rfind("## A tour of the CLI", 0) == 0) {
      in_section = true;
      continue;
    }
    if (!in_section) continue;
    const bool indented = line.rfind("    ", 0) == 0;
    if (indented) {
      in_block = true;
      lines.push_back(line.substr(4));
    } else if (in_block && !line.empty()) {
      break;  // the first non-indented text after the block ends it
    }
  }
  return lines;
}

// One tour line as a shell command: comment and optional `[...]` groups removed, placeholders
// filled in. Empty when nothing is left to run.
std::string as_command(std::string line) {
  line = std::regex_replace(line, std::regex(R"(\s+#.*$)"), "");
  line = std::regex_replace(line, std::regex(R"(\s*\[[^\]]*\])"), "");
  // Whole-file perplexities of the 0.8 MB validation text take ~2 min each at one thread, too
  // long for a test that runs beside the suite: every --text reads the 40 KB head of it instead
  // (kTourText, written beside the script); the commands and flags are otherwise as written.
  line = std::regex_replace(line, std::regex(R"(--text (FILE|\.\.\.|\$T|\.\./shared/data/tinystories/tinystories_val\.txt))"),
                            std::string("--text ") + kTourText);
  line = std::regex_replace(line, std::regex(R"(^\s+|\s+$)"), "");
  return line.rfind('#', 0) == 0 ? "" : line;
}

double perplexity_of(const std::string& model, const std::string& text) {
  CliResult r = run_cli("eval --model " + model + " --text " + text + " --ctx 256 --json --threads 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out).at("ppl").get<double>();
}

TEST(ReadmeTour, RunsAsWritten) {
  RANKRL_REQUIRE_DATA("stories260K/stories260K.bin");
  const std::vector<std::string> lines = tour_lines(read_text(std::string(RANKRL_SOURCE_DIR) + "/README.md"));
  ASSERT_GE(lines.size(), 10u) << "README.md has no tour block under '## A tour of the CLI'";

  // A scratch repository: build/rankrl and ../shared resolve as they do from the real one.
  TempDir root;
  const std::string repo = root.file("repo");
  fs::create_directories(repo + "/build");
  fs::create_symlink(RANKRL_CLI, repo + "/build/rankrl");
  fs::create_symlink(fs::absolute(shared_data()).parent_path(), root.file("shared"));

  // A 40 KB head of the validation text (cut at a line end): the tour's --text, and enough tokens
  // to separate the models below.
  std::string text = read_text(data_file("tinystories/tinystories_val.txt")).substr(0, 40000);
  text.resize(text.rfind('\n') + 1);
  const std::string T = repo + "/" + kTourText;
  write_text(T, text);

  std::ostringstream script;
  script << "set -e\ncd '" << repo << "'\nexport OMP_NUM_THREADS=1\n";
  int commands = 0;
  for (const std::string& line : lines) {
    const std::string cmd = as_command(line);
    if (cmd.empty()) continue;
    // The tour's hand-written plan: the one the uniform compression just wrote is a valid one.
    if (cmd.find("--plan plan.json") != std::string::npos) script << "cp small/plan.json plan.json\n";
    script << "echo \"+ " << std::regex_replace(cmd, std::regex("[\"$`\\\\]"), "\\$&") << "\" >&2\n"
           << cmd << " >/dev/null\n";
    ++commands;
  }
  write_text(root.file("tour.sh"), script.str());
  const std::string log = root.file("tour.log");
  const int status = std::system(("bash " + root.file("tour.sh") + " 2>" + log + " </dev/null").c_str());
  ASSERT_EQ(status, 0) << "a tour command failed; the last lines of its stderr:\n" << read_text(log);
  EXPECT_GE(commands, 12);

  // What the tour produced behaves as the README says.
  const std::string M = data_file("stories260K/stories260K.bin");
  const double dense = perplexity_of(M, T);
  EXPECT_NEAR(perplexity_of(repo + "/stories-hf", T), dense, 1e-4 * dense);  // convert keeps the function
  const double small = perplexity_of(repo + "/small", T);
  EXPECT_GT(small, dense * 1.01);                                            // keep 0.6 is not free
  EXPECT_NEAR(perplexity_of(repo + "/small-dense", T), small, 1e-3 * small); // A·B multiplied out
  EXPECT_NEAR(perplexity_of(repo + "/small2", T), small, 1e-3 * small);      // same plan, same stats
  EXPECT_TRUE(fs::exists(repo + "/stats.safetensors"));
}

}  // namespace
}  // namespace rankrl::test
