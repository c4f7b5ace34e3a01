#include "core/error.h"

namespace rankrl {

namespace {
std::string format(const std::string& file, const std::string& what) {
  return file.empty() ? what : file + ": " + what;
}
}  // namespace

Error::Error(std::string file, const std::string& what, int exit_code)
    : std::runtime_error(format(file, what)), file_(std::move(file)), message_(what),
      exit_code_(exit_code) {}

Error usage_error(const std::string& what) { return Error("", what, 2); }

}  // namespace rankrl
