// rankrl: compress language models with low-rank factors chosen by reinforcement learning.
#include <c10/util/Exception.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"

namespace rankrl::cli {

void add_common(CLI::App* sub, Common& common) {
  sub->add_option("--threads", common.threads,
                  "Threads for tensor ops (default: OMP_NUM_THREADS, else every core)");
  sub->add_flag("--json", common.json, "Print exactly one JSON object on stdout");
  sub->add_flag("-q,--quiet", common.quiet, "No progress or log lines on stderr");
}

void apply_common(const Common& common) {
  set_quiet(common.quiet);
  setup_threads(common.threads);
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

namespace {
std::string g_command_line;
}
const std::string& command_line() { return g_command_line; }

namespace {
void print_flat(const nlohmann::json& j, const std::string& prefix) {
  for (const auto& [key, value] : j.items()) {
    if (value.is_object()) print_flat(value, prefix + key + ".");
    else std::cout << prefix << key << ": " << (value.is_string() ? value.get<std::string>() : value.dump()) << "\n";
  }
}
}  // namespace

void print_result(const nlohmann::json& j, const Common& common) {
  if (common.json) print_json(j);
  else print_flat(j, "");
}

// `rankrl: error: <message>` as exactly one line: messages from libraries (CLI11, c10) may span
// several, which would break the one-line error contract.
void print_error(std::string message) {
  for (char& ch : message)
    if (ch == '\n' || ch == '\r') ch = ' ';
  while (!message.empty() && message.back() == ' ') message.pop_back();
  std::fprintf(stderr, "rankrl: error: %s\n", message.c_str());
}

}  // namespace rankrl::cli

namespace {

// Under mpirun every rank runs the same program, so a bad input fails on every rank at once:
// rank 0 prints the one error line and ends all ranks; another rank prints only if rank 0 has not
// ended it within a moment (the failure was its own). Without mpirun: print and return the code.
int fail(const std::string& message, int exit_code) {
  using namespace rankrl;
  if (dist::active() && !dist::is_root()) std::this_thread::sleep_for(std::chrono::seconds(2));
  cli::print_error(message);
  if (dist::active()) dist::abort_all(exit_code);
  dist::finalize();
  return exit_code;
}

int run(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
  rankrl::dist::init(&argc, &argv);
  const int code = run(argc, argv);
  rankrl::dist::finalize();
  return code;
}

namespace {

int run(int argc, char** argv) {
  using namespace rankrl;
  CLI::App app{"rankrl: make language models smaller with low-rank factors chosen by RL"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rankrl 0.1.0");
  for (int i = 0; i < argc; ++i) cli::g_command_line += (i ? " " : "") + std::string(argv[i]);
  // Every --help shows each option's default (subcommands inherit this from the app).
  app.option_defaults()->always_capture_default();
  cli::Common common;
  std::vector<cli::Command> commands = {
      cli::add_eval(app, common),     cli::add_generate(app, common),
      cli::add_inspect(app, common),  cli::add_tokenize(app, common),
      cli::add_convert(app, common),   cli::add_data(app, common),
      cli::add_calibrate(app, common), cli::add_compress(app, common),
      cli::add_export_dense(app, common),  cli::add_search(app, common), cli::add_plan(app, common), cli::add_report(app, common), cli::add_experiment(app, common),
      cli::add_train_tokenizer(app, common), cli::add_train(app, common),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // Bad usage: one line in the project's format (CLI11's own print adds a second line).
    return fail(std::string(e.what()) + " (see --help)", 2);
  }
  try {
    for (const cli::Command& c : commands)
      if (c.app->parsed()) {
        cli::apply_common(common);
        return c.run();
      }
  } catch (const Error& e) {
    return fail(e.what(), e.exit_code());
  } catch (const c10::Error& e) {
    return fail(std::string("tensor operation failed: ") + e.what_without_backtrace(), 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
  return 2;
}

}  // namespace
