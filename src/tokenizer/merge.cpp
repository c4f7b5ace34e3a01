#include "tokenizer/merge.h"

#include <algorithm>

namespace rankrl {

namespace {

struct Candidate {
  double priority;
  int32_t pos;  // index of the left symbol; list order equals index order, so it breaks ties
  int32_t left, right;
};

// std heap functions build a max-heap: "less" means "merges later".
bool merges_later(const Candidate& a, const Candidate& b) {
  if (a.priority != b.priority) return a.priority > b.priority;
  return a.pos > b.pos;
}

class Merger {
 public:
  Merger(std::vector<int32_t>& ids, const MergeTable& table)
      : ids_(ids), table_(table), prev_(ids.size()), next_(ids.size()) {
    const int32_t n = static_cast<int32_t>(ids.size());
    for (int32_t i = 0; i < n; ++i) {
      prev_[i] = i - 1;
      next_[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
  }

  void run() {
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), merges_later);
      const Candidate c = heap_.back();
      heap_.pop_back();
      if (is_current(c)) merge_at(c.pos);
    }
    ids_.erase(std::remove(ids_.begin(), ids_.end(), kDead), ids_.end());
  }

 private:
  static constexpr int32_t kDead = -1;

  void push(int32_t pos) {
    if (pos < 0) return;
    const int32_t right = next_[pos];
    if (right < 0) return;
    const MergeRule* rule = table_.find(ids_[pos], ids_[right]);
    if (!rule) return;
    heap_.push_back({rule->priority, pos, ids_[pos], ids_[right]});
    std::push_heap(heap_.begin(), heap_.end(), merges_later);
  }

  // A queued pair is stale once either symbol changed; an unchanged pair has the same rule.
  bool is_current(const Candidate& c) const {
    const int32_t right = next_[c.pos];
    return ids_[c.pos] == c.left && right >= 0 && ids_[right] == c.right;
  }

  void merge_at(int32_t pos) {
    const int32_t right = next_[pos];
    ids_[pos] = table_.find(ids_[pos], ids_[right])->merged;
    ids_[right] = kDead;
    next_[pos] = next_[right];
    if (next_[pos] >= 0) prev_[next_[pos]] = pos;
    push(prev_[pos]);
    push(pos);
  }

  std::vector<int32_t>& ids_;
  const MergeTable& table_;
  std::vector<int32_t> prev_, next_;
  std::vector<Candidate> heap_;
};

}  // namespace

void apply_merges(std::vector<int32_t>& ids, const MergeTable& table) {
  if (ids.size() < 2 || table.size() == 0) return;
  Merger(ids, table).run();
}

}  // namespace rankrl
