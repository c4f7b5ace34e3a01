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

// A single-line progress bar on stderr with rate and ETA, redrawn at most ~10 times a second.
// Draws only when stderr is a terminal or RANKRL_PROGRESS=1, so logs stay clean.
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
  std::string label_, unit_, note_;
  int64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Seconds since `start` as a double.
double seconds_since(std::chrono::steady_clock::time_point start);

}  // namespace rankrl
