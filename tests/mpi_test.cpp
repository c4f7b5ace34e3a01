// Work spread over MPI ranks (core/dist.h): the helpers in one process (size 1, no MPI call), and
// `mpirun -np 2` runs of the CLI compared byte for byte with one process: search (plan.json,
// log.jsonl and results.json without times), eval --text (perplexity) and eval --tasks; a
// failure on one rank ends both ranks with one error line.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/dist.h"
#include "core/error.h"
#include "test_util.h"

namespace rankrl {
namespace {

using nlohmann::json;
using test::data_file;

// --- the helpers in one process -----------------------------------------------------------

TEST(Dist, OneProcessWithoutMpirun) {
  // ctest does not start the tests under mpirun: no MPI, rank 0 of 1.
  EXPECT_EQ(dist::size(), 1);
  EXPECT_EQ(dist::rank(), 0);
  EXPECT_TRUE(dist::is_root());
  EXPECT_FALSE(dist::active());
  dist::barrier();  // a no-op, not a hang
  EXPECT_EQ(dist::allgather("abc"), std::vector<std::string>{"abc"});
  std::string b = "xyz";
  dist::broadcast(b);
  EXPECT_EQ(b, "xyz");
  EXPECT_EQ(dist::owner(5), 0);
}

TEST(Dist, ShareRunsEveryUnitInOrder) {
  std::vector<size_t> calls;
  std::vector<std::string> out = dist::share(4, [&](size_t i) {
    calls.push_back(i);
    return std::string(i, 'a' + char(i));
  });
  EXPECT_EQ(calls, (std::vector<size_t>{0, 1, 2, 3}));
  EXPECT_EQ(out, (std::vector<std::string>{"", "b", "cc", "ddd"}));
  // Doubles come back bit for bit (no text round trip): 0.1 + 0.2 and a subnormal.
  const double odd = 0.1 + 0.2, tiny = 4.9e-324;
  std::vector<double> d = dist::share_doubles(3, [&](size_t i) { return i == 0 ? odd : i == 1 ? tiny : -0.0; });
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(std::memcmp(&d[0], &odd, sizeof odd), 0);
  EXPECT_EQ(std::memcmp(&d[1], &tiny, sizeof tiny), 0);
  EXPECT_TRUE(std::signbit(d[2]));
}

TEST(Dist, WriterReaderRoundTripAndTruncation) {
  dist::Writer w;
  w.put(int64_t(-7));
  w.put_bytes("hello");
  w.put(uint8_t(3));
  const std::string bytes = w.take();
  EXPECT_EQ(bytes.size(), sizeof(int64_t) + sizeof(size_t) + 5 + 1);
  dist::Reader r(bytes);
  EXPECT_EQ(r.get<int64_t>(), -7);
  EXPECT_EQ(r.get_bytes(), "hello");
  EXPECT_EQ(r.get<uint8_t>(), 3);
  EXPECT_THROW(r.get<uint8_t>(), Error);  // past the end: an error, not a read of garbage
  const std::string cut = bytes.substr(0, 10);
  dist::Reader c(cut);
  c.get<int64_t>();
  EXPECT_THROW(c.get_bytes(), Error);
}

// --- mpirun -np 2 against one process ------------------------------------------------------

using test::kBin;
using test::kVal;

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// build/rankrl `args` under `mpirun -np ranks` (ranks 0: no mpirun), one thread per rank.
RunResult run(int ranks, const std::string& args, const std::string& env = "") {
  test::TempDir tmp;
  const std::string launch = ranks > 0 ? "mpirun -q --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np " + std::to_string(ranks) + " " : "";
  const std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " + env + " " + launch +
                          RANKRL_CLI + " " + args + " >" + tmp.file("out") + " 2>" + tmp.file("err") + " </dev/null";
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = test::read_text(tmp.file("out"));
  r.err = test::read_text(tmp.file("err"));
  return r;
}

// Drops every key about time (they differ between any two runs).
json without_times(json j) {
  if (j.is_object()) {
    json out = json::object();
    for (auto& [k, v] : j.items())
      if (k.find("second") == std::string::npos && k != "timing" && k != "tokens_per_second" && k != "command")
        out[k] = without_times(v);
    return out;
  }
  if (j.is_array())
    for (json& v : j) v = without_times(v);
  return j;
}

std::vector<json> log_lines(const std::string& path) {
  std::vector<json> lines;
  std::istringstream in(test::read_text(path));
  for (std::string line; std::getline(in, line);) lines.push_back(without_times(json::parse(line)));
  return lines;
}

struct MpiCli : ::testing::Test {
  void SetUp() override {
    if (std::system("command -v mpirun >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)";
    RANKRL_REQUIRE_DATA(kBin);
    RANKRL_REQUIRE_DATA("tasks/arc_easy.jsonl");
    // A short text (the first 24 KB, cut at a line) and 16 items per split, so runs take seconds.
    std::string text = test::read_text(data_file(kVal)).substr(0, 24000);
    test::write_text(dir.file("text.txt"), text.substr(0, text.rfind('\n') + 1));
    test::write_small_task_splits(dir.file("tasks"));
  }
  test::TempDir dir;
};

TEST_F(MpiCli, SearchOnTwoRanksEqualsOneProcess) {
  const std::string args = "search --model " + data_file(kBin) + " --calib " + data_file(kVal) +
                           " --calib-tokens 1024 --ctx 128 --heldout-tokens 1024 --keep 0.6 --rkd " + dir.file("tasks") +
                           " --vrkd " + dir.file("tasks") + " --test " + dir.file("tasks") +
                           " --episodes 6 --episodes-per-update 2 --sensitivity-grid 1 --reward-items 8 --threads 1"
                           " --seed 3 --finalists 1 --json -q --out ";
  RunResult one = run(0, args + dir.file("np1"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  RunResult two = run(2, args + dir.file("np2"));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_EQ(two.err, "");  // -q: nothing on stderr, from either rank
  EXPECT_EQ(test::read_text(dir.file("np1/plan.json")), test::read_text(dir.file("np2/plan.json")));
  const std::vector<json> log1 = log_lines(dir.file("np1/log.jsonl")), log2 = log_lines(dir.file("np2/log.jsonl"));
  EXPECT_GT(log1.size(), 20u);
  EXPECT_EQ(log1, log2);
  const json r1 = json::parse(test::read_text(dir.file("np1/results.json")));
  const json r2 = json::parse(test::read_text(dir.file("np2/results.json")));
  EXPECT_EQ(without_times(r1), without_times(r2));
  EXPECT_EQ(r1["timing"]["evaluations"], r2["timing"]["evaluations"]);
  EXPECT_EQ(r1["timing"]["surrogate_evaluations"], r2["timing"]["surrogate_evaluations"]);
  // stdout: exactly one JSON object (rank 0's), the same as one process's but for times.
  EXPECT_EQ(without_times(json::parse(one.out)), without_times(json::parse(two.out)));
  // The compressed model is written once, by rank 0, and is the same.
  EXPECT_EQ(test::read_text(dir.file("np1/model/model.safetensors")), test::read_text(dir.file("np2/model/model.safetensors")));
  // Killed after 6 checkpoints (rank 0 exits, mpirun ends rank 1), then resumed on two ranks: the
  // same plan and log as one uninterrupted process.
  RunResult killed = run(2, args + dir.file("part") + " --abort-after 6");
  EXPECT_EQ(killed.exit_code, 3) << killed.err;
  RunResult resumed = run(2, args + dir.file("part") + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_text(dir.file("np1/plan.json")), test::read_text(dir.file("part/plan.json")));
  EXPECT_EQ(log1, log_lines(dir.file("part/log.jsonl")));
}

TEST_F(MpiCli, EvalTextAndTasksOnTwoRanksEqualOneProcess) {
  const std::string text = "eval --model " + data_file(kBin) + " --text " + dir.file("text.txt") + " --ctx 128 --batch 2 --threads 1 --json -q";
  RunResult one = run(0, text), two = run(2, text), three = run(3, text);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(two.exit_code, 0) << two.err;
  ASSERT_EQ(three.exit_code, 0) << three.err;
  const json p1 = json::parse(one.out), p2 = json::parse(two.out), p3 = json::parse(three.out);
  EXPECT_GT(p1["windows"].get<int>(), 20);  // enough windows (batches of 2) that every rank scores some
  // Perplexity to the last digit: the same bits, whatever the rank count.
  EXPECT_EQ(p1["nll"].dump(), p2["nll"].dump());
  EXPECT_EQ(p1["ppl"].dump(), p2["ppl"].dump());
  EXPECT_EQ(p1["ppl"].dump(), p3["ppl"].dump());
  EXPECT_EQ(without_times(p1), without_times(p2));

  const std::string tasks = "eval --model " + data_file(kBin) + " --tasks " + data_file("tasks/arc_easy.jsonl") +
                            " --limit 30 --threads 1 --json -q";
  RunResult t1 = run(0, tasks), t2 = run(2, tasks);
  ASSERT_EQ(t1.exit_code, 0) << t1.err;
  ASSERT_EQ(t2.exit_code, 0) << t2.err;
  const json a = json::parse(t1.out), b = json::parse(t2.out);
  EXPECT_EQ(a["items"], 30);
  EXPECT_EQ(without_times(a), without_times(b));  // acc, acc_norm, margin, intervals
}

TEST_F(MpiCli, AFailureOnOneRankEndsBothWithOneErrorLine) {
  // Rank 1 alone fails (a test-only switch) while rank 0 waits for its share.
  const std::string text = "eval --model " + data_file(kBin) + " --text " + dir.file("text.txt") + " --ctx 128 --threads 1 -q";
  RunResult r = run(2, text, "RANKRL_TEST_FAIL_RANK=1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "rankrl: error: injected failure on rank 1 (RANKRL_TEST_FAIL_RANK)\n");
  EXPECT_EQ(r.out, "");
  // A bad input fails on every rank: one line, rank 0's, and its exit code.
  RunResult bad = run(2, "eval --model " + dir.file("missing.bin") + " --text " + dir.file("text.txt") + " --threads 1");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  EXPECT_EQ(bad.err.rfind("rankrl: error: " + dir.file("missing.bin"), 0), 0u) << bad.err;
  RunResult usage = run(2, "eval --model " + data_file(kBin) + " --text " + dir.file("text.txt") + " --ctx 1 --threads 1");
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(std::count(usage.err.begin(), usage.err.end(), '\n'), 1) << usage.err;
  // A search that fails writes nothing: rank 0 alone would have written, and it stops first.
  RunResult search = run(2, "search --model " + data_file(kBin) + " --calib " + data_file(kVal) +
                          " --calib-tokens 512 --ctx 128 --keep 0.6 --rkd " + dir.file("tasks") + " --vrkd " + dir.file("tasks") +
                          " --test " + dir.file("tasks") + " --episodes 2 --threads 1 -q --out " + dir.file("failed"),
                   "RANKRL_TEST_FAIL_RANK=1");
  EXPECT_EQ(search.exit_code, 1);
  EXPECT_EQ(search.err, "rankrl: error: injected failure on rank 1 (RANKRL_TEST_FAIL_RANK)\n");
  EXPECT_FALSE(std::filesystem::exists(dir.file("failed/plan.json")));
}

}  // namespace
}  // namespace rankrl
