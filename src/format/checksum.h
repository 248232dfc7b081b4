#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kiln/status.h"

namespace kiln::format {

// FlatBuffers verifier limits for engine files: nesting (the schema nests 4 deep) and tables
// (a large model has some 10^5).
inline constexpr uint32_t kVerifierMaxDepth = 64;
inline constexpr uint32_t kVerifierMaxTables = 1u << 22;

// XXH64 (seed 0) of `data`, reading the bytes in [zero_begin, zero_end) as zero. The engine
// checksum covers the whole file with its own 8 bytes zeroed, so the writer can patch it in
// after hashing and the reader can verify in place, without a copy.
uint64_t xxh64(std::span<const std::byte> data, size_t zero_begin = 0, size_t zero_end = 0);

// The checksum of an engine file whose checksum field starts at byte `field`.
inline uint64_t engine_checksum(std::span<const std::byte> file, size_t field) {
  return xxh64(file, field, field + sizeof(uint64_t));
}

// Computes and writes the checksum of a whole engine file (size prefix matching its length,
// passing the FlatBuffers verifier, checksum field present). The writer seals what it builds;
// tests and the fuzzer reseal files they have patched on purpose, to reach the checks that
// come after the checksum.
Status seal_engine(std::span<std::byte> file);

}  // namespace kiln::format
