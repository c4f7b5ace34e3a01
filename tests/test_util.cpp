#include "test_util.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

namespace rankrl::test {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = (std::filesystem::temp_directory_path() /
           ("rankrl-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
              .string();
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

CliResult run_cli(const std::string& args) {
  TempDir tmp;
  std::string cmd = std::string(RANKRL_CLI) + " " + args + " >" + tmp.file("out") + " 2>" +
                    tmp.file("err") + " </dev/null";
  int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(tmp.file("out"));
  r.err = read_text(tmp.file("err"));
  return r;
}

void write_small_task_splits(const std::string& dir) {
  std::istringstream in(read_text(data_file("tasks/arc_easy.jsonl")));
  std::string line, parts[3];
  for (int i = 0; i < 48 && std::getline(in, line); ++i) parts[i / 16] += line + "\n";
  std::filesystem::create_directories(dir);
  const char* names[3] = {"/rkd.jsonl", "/vrkd.jsonl", "/test.jsonl"};
  for (int s = 0; s < 3; ++s) write_text(dir + names[s], parts[s]);
}

std::vector<nlohmann::json> log_without_times(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_text(path));
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("seconds");
    lines.push_back(j);
  }
  return lines;
}

}  // namespace rankrl::test
