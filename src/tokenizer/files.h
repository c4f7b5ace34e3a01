// A model's tokenizer files, written beside its weights (compress, export-dense, train, the
// synthetic-checkpoint benchmark): the one place that knows how a tokenizer becomes files.
// Torch-free.
#pragma once
#include <cstdint>
#include <string>

namespace rankrl {

// Writes the tokenizer `tokenizer_path` into `dir` as tokenizer.json (+ tokenizer_config.json and
// friends when present). An HF directory or a tokenizer.json is copied; a llama2.c tokenizer.bin
// is converted to tokenizer.json. Under mpirun only rank 0 writes.
void write_tokenizer_files(const std::string& tokenizer_path, int64_t vocab_size, const std::string& dir);

// Throws Error(tokenizer_path, ...) when write_tokenizer_files would fail on this tokenizer (a
// llama2.c tokenizer.bin whose pieces tokenizer.json cannot hold). Call it before any expensive
// or writing stage, so a bad tokenizer is blamed by its own name and not by the output.
void check_tokenizer_writable(const std::string& tokenizer_path, int64_t vocab_size);

}  // namespace rankrl
