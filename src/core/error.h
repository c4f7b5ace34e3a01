// Errors: one exception type that carries the offending file and a one-line message.
// The CLI prints it as `rankrl: error: <file>: <what>` and exits with `exit_code()`
// (1 = bad input, 2 = bad usage), following DESIGN.md.
#pragma once
#include <stdexcept>
#include <string>

namespace rankrl {

class Error : public std::runtime_error {
 public:
  // `file` names the input at fault ("" when none); `what` says what is wrong, in one line.
  Error(std::string file, const std::string& what, int exit_code = 1);

  const std::string& file() const { return file_; }
  const std::string& message() const { return message_; }
  int exit_code() const { return exit_code_; }

 private:
  std::string file_;
  std::string message_;
  int exit_code_;
};

// Bad usage (impossible flag values, conflicting options): exit code 2.
Error usage_error(const std::string& what);

// Throws Error(file, what) unless `condition` holds.
inline void check(bool condition, const std::string& file, const std::string& what) {
  if (!condition) throw Error(file, what);
}

}  // namespace rankrl
