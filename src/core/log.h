// Logging and progress to stderr (stdout is reserved for results and --json output).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace rankrl {

// Silences info() and progress bars (set by --quiet / --json).
void set_quiet(bool quiet);
bool quiet();

// One line to stderr, prefixed with "rankrl: ".
void info(const std::string& line);

// "rankrl: warning: <line>" on stderr, even with --quiet: something was skipped or redone.
void warn(const std::string& line);

// Progress on stderr with rate and ETA. RANKRL_PROGRESS=1 (or, unset, stderr a terminal): a bar
// redrawn ~10 times a second. Unset and stderr not a terminal (logs, pipes): a plain line every
// 10 s and one when a phase that took at least a second ends. RANKRL_PROGRESS=0 or --quiet: none.
class Progress {
 public:
  // `visible` = false keeps the bar hidden whatever the terminal (callers that report elsewhere).
  Progress(std::string label, int64_t total, std::string unit = "it", bool visible = true);
  ~Progress();
  void advance(int64_t n = 1);
  void set_note(std::string note) { note_ = std::move(note); }
  void finish();

 private:
  void draw(bool final);
  static constexpr double kLineSeconds = 10.0;
  enum class Mode { off, bar, lines };
  std::string label_, unit_, note_;
  int64_t total_, done_ = 0;
  Mode mode_ = Mode::off;
  bool finished_ = false, printed_line_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Seconds since `start` as a double.
double seconds_since(std::chrono::steady_clock::time_point start);

}  // namespace rankrl
