// The CLI: each subcommand file registers its options and a run function; main() dispatches.
// Subcommands are thin shells over the library: parse flags, call it, print text or JSON.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace rankrl::cli {

// Flags every subcommand takes.
struct Common {
  int threads = 0;
  bool json = false;
  bool quiet = false;
};

struct Command {
  CLI::App* app;
  std::function<int()> run;  // returns the exit code
};

void add_common(CLI::App* sub, Common& common);
// Applies --threads/--quiet/--json (JSON mode silences progress on stderr's bars, not errors).
void apply_common(const Common& common);
// Prints one JSON object on stdout.
void print_json(const nlohmann::json& j);
// --json: print_json; otherwise one "key: value" line per field (nested objects flattened).
void print_result(const nlohmann::json& j, const Common& common);

Command add_eval(CLI::App& app, Common& common);
Command add_data(CLI::App& app, Common& common);
Command add_generate(CLI::App& app, Common& common);
Command add_inspect(CLI::App& app, Common& common);
Command add_tokenize(CLI::App& app, Common& common);
Command add_convert(CLI::App& app, Common& common);
Command add_calibrate(CLI::App& app, Common& common);
Command add_compress(CLI::App& app, Common& common);
Command add_export_dense(CLI::App& app, Common& common);
Command add_search(CLI::App& app, Common& common);
Command add_plan(CLI::App& app, Common& common);
Command add_report(CLI::App& app, Common& common);
Command add_experiment(CLI::App& app, Common& common);
// The command line this process was started with (recorded in result files).
const std::string& command_line();
Command add_train_tokenizer(CLI::App& app, Common& common);
Command add_train(CLI::App& app, Common& common);

}  // namespace rankrl::cli
