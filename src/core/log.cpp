#include "core/log.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/dist.h"

namespace rankrl {

namespace {
bool g_quiet = false;

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}
}  // namespace

void set_quiet(bool q) { g_quiet = q; }
bool quiet() { return g_quiet; }

// Under mpirun only rank 0 prints (every rank runs the same program and would repeat each line).
void info(const std::string& line) {
  if (!g_quiet && dist::is_root()) std::fprintf(stderr, "rankrl: %s\n", line.c_str());
}

void warn(const std::string& line) {
  if (dist::is_root()) std::fprintf(stderr, "rankrl: warning: %s\n", line.c_str());
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool visible)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  const char* env = std::getenv("RANKRL_PROGRESS");
  const std::string setting = env ? env : "";
  if (!visible || g_quiet || setting == "0" || !dist::is_root()) mode_ = Mode::off;
  else if (setting == "1" || (setting.empty() && ::isatty(STDERR_FILENO))) mode_ = Mode::bar;
  else mode_ = Mode::lines;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t n) {
  done_ += n;
  if (total_ > 0 && done_ > total_) done_ = total_;  // shares advanced as whole (mpirun) may overshoot
  auto now = std::chrono::steady_clock::now();
  // A bar redraws ~10 times a second; plain lines (logs, pipes) every kLineSeconds.
  const double every = mode_ == Mode::lines ? kLineSeconds : 0.1;
  if (std::chrono::duration<double>(now - last_draw_).count() >= every) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  if (mode_ == Mode::off) return;
  double elapsed = seconds_since(start_);
  double rate = elapsed > 0 ? double(done_) / elapsed : 0.0;
  std::string eta = (rate > 0 && total_ > done_) ? format_duration(double(total_ - done_) / rate) : "-";
  if (mode_ == Mode::lines) {
    // The end of a phase is news only when it took a while or lines were printed during it.
    if (final && elapsed < 1.0 && !printed_line_) return;
    printed_line_ = true;
    std::fprintf(stderr, "rankrl: %s: %lld/%lld %s, %.1f %s/s, %s %s%s%s\n", label_.c_str(), (long long)done_,
                 (long long)total_, unit_.c_str(), rate, unit_.c_str(), final ? "done in" : "eta",
                 final ? format_duration(elapsed).c_str() : eta.c_str(), note_.empty() ? "" : ", ", note_.c_str());
    std::fflush(stderr);
    return;
  }
  int width = 24;
  int filled = total_ > 0 ? int(width * std::min<double>(1.0, double(done_) / double(total_))) : 0;
  std::string bar(filled, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  eta %s  %s\033[K", label_.c_str(),
               bar.c_str(), (long long)done_, (long long)total_, unit_.c_str(), rate, unit_.c_str(),
               final ? format_duration(elapsed).c_str() : eta.c_str(), note_.c_str());
  if (final) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace rankrl
