// rankrl report: report.html (self-contained, inline SVG) and report.md for a search output dir.
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "report/report.h"

namespace rankrl::cli {

Command add_report(CLI::App& app, Common& common) {
  auto out = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "report",
      "Write OUT/report.html (one self-contained file: reward and best-so-far curves, quality-vs-size chart\n"
      "with the Pareto front, heat map of the chosen plan, singular-value spectra, results table, command,\n"
      "versions, seeds) and OUT/report.md (the tables) from a `rankrl search` output directory.");
  sub->add_option("OUT", *out, "Output directory of rankrl search")->required();
  add_common(sub, common);
  return {sub, [out, &common] {
            if (!is_directory(*out)) throw Error(*out, "not a directory");
            nlohmann::json r = report::write_report(*out);
            info("wrote " + r["html"].get<std::string>() + " and " + r["md"].get<std::string>());
            print_result(r, common);
            return 0;
          }};
}

}  // namespace rankrl::cli
