#include "core/log.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

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

void info(const std::string& line) {
  if (!g_quiet) std::fprintf(stderr, "rankrl: %s\n", line.c_str());
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool visible)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  const char* env = std::getenv("RANKRL_PROGRESS");
  bool forced = env && std::string(env) == "1";
  enabled_ = visible && !g_quiet && (forced || ::isatty(STDERR_FILENO));
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t n) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_draw_).count() >= 0.1) {
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
  if (!enabled_) return;
  double elapsed = seconds_since(start_);
  double rate = elapsed > 0 ? double(done_) / elapsed : 0.0;
  int width = 24;
  int filled = total_ > 0 ? int(width * std::min<double>(1.0, double(done_) / double(total_))) : 0;
  std::string bar(filled, '#');
  bar.resize(width, '.');
  std::string eta = (rate > 0 && total_ > done_) ? format_duration(double(total_ - done_) / rate) : "-";
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  eta %s  %s\033[K", label_.c_str(),
               bar.c_str(), (long long)done_, (long long)total_, unit_.c_str(), rate, unit_.c_str(),
               final ? format_duration(elapsed).c_str() : eta.c_str(), note_.c_str());
  if (final) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace rankrl
