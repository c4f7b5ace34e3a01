// Every `rankrl search` option declared once: its flag, where its value lives in SearchOptions
// (whose member initialisers are the defaults), its --help text and what else reads it. From this
// one table come the CLI flags (cli/cmd_search.cpp), the keys an experiment file's extra_args may
// set (experiment/experiment.cpp) and the resume fingerprint (search.cpp). Adding an option is one
// row here plus its field (and default) in SearchOptions.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "search/search.h"

namespace rankrl {

// The typed field an option sets. A list (--methods a,b) is a vector, given as comma-separated text.
using OptionField = std::variant<std::string*, int64_t*, int*, uint64_t*, double*, bool*, std::vector<std::string>*>;

// What reads an option besides the search itself (bit flags).
enum OptionUse : unsigned {
  kRequired = 1u << 0,         // the CLI refuses to run without it
  kHidden = 1u << 1,           // a testing aid, not shown by --help
  kFlag = 1u << 2,             // a switch without a value (bool)
  kExperiment = 1u << 3,       // settable by an experiment file's extra_args (the others are the spec's own keys)
  kFingerprint = 1u << 4,      // a resume only continues a run with the same value
  kFingerprintFile = 1u << 5,  // ... with the same file content (sha256), wherever the file now lies
  kCalibFlag = 1u << 6,        // registered by the calibration flags every command shares (cmd_calibrate.cpp)
};

struct SearchOptionInfo {
  const char* flag;                        // "--episodes"
  const char* help;                        // --help text (CLI11 adds the default)
  OptionField (*field)(SearchOptions& o);  // where the value lives
  unsigned uses = 0;                       // OptionUse bits

  bool has(OptionUse u) const { return (uses & u) != 0; }
  // The flag without its leading "--": an experiment file's extra_args key.
  std::string key() const { return std::string(flag).substr(2); }
};

// In --help order.
const std::vector<SearchOptionInfo>& search_option_table();
// nullptr when no option has this flag ("--episodes").
const SearchOptionInfo* find_search_option(const std::string& flag);

// Sets the option from its text as on a command line ("12", "0.5", "a,b"); std::logic_error
// (std::stoll's) on a malformed number.
void set_option_text(SearchOptions& o, const SearchOptionInfo& opt, const std::string& text);
// The option's value in `o` as JSON (a list as an array): the fingerprint's entry.
nlohmann::json option_json(const SearchOptions& o, const SearchOptionInfo& opt);

}  // namespace rankrl
