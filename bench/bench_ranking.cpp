// bench_ranking: multiple-choice scoring item by item (rankrl eval --tasks) against the batched
// RankingScorer the search uses, on the same items and model, in one run. Prints items/s of
// each, the speed-up and the largest score difference.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iostream>

#include "core/log.h"
#include "core/threads.h"
#include "data/tasks.h"
#include "eval/ranking.h"
#include "eval/ranking_batch.h"
#include "model/model.h"

int main(int argc, char** argv) {
  using namespace rankrl;
  CLI::App app{"per-item vs batched ranking"};
  std::string model, tokenizer, tasks;
  int64_t limit = 200, reps = 3, batch_tokens = 512;
  int threads = 0;
  app.add_option("--model", model)->required();
  app.add_option("--tokenizer", tokenizer);
  app.add_option("--tasks", tasks)->required();
  app.add_option("--limit", limit);
  app.add_option("--reps", reps);
  app.add_option("--threads", threads);
  app.add_option("--batch-tokens", batch_tokens);
  CLI11_PARSE(app, argc, argv);
  try {
    setup_threads(threads);
    set_quiet(true);
    Model m = load_model(model, tokenizer);
    std::vector<TaskItem> items = read_tasks(tasks, "", limit);
    auto best_of = [&](auto&& fn) {
      double best = 1e300;
      for (int64_t r = 0; r < reps; ++r) {
        auto start = std::chrono::steady_clock::now();
        fn();
        best = std::min(best, seconds_since(start));
      }
      return best;
    };
    RankingResult single, batched;
    double t_single = best_of([&] { single = evaluate_ranking(*m.net, *m.tokenizer, items, false); });
    RankingScorer scorer(*m.tokenizer, items, m.config().max_seq_len, batch_tokens);
    double t_batched = best_of([&] { batched = scorer.score(*m.net); });
    double diff = 0.0;
    for (size_t i = 0; i < items.size(); ++i)
      for (size_t k = 0; k < items[i].choices.size(); ++k)
        diff = std::max(diff, std::abs(single.per_item[i].scores[k] - batched.per_item[i].scores[k]));
    std::cout << nlohmann::json{{"items", items.size()}, {"tokens", scorer.tokens()},
                                {"per_item_items_per_s", items.size() / t_single},
                                {"batched_items_per_s", items.size() / t_batched},
                                {"speedup", t_single / t_batched}, {"max_score_diff", diff},
                                {"margin_per_item", single.margin}, {"margin_batched", batched.margin}}
                     .dump()
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_ranking: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
