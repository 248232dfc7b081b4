#include "format/checksum.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln::format {
namespace {

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = static_cast<std::byte>(s[i]);
  return out;
}

// Reference values from the xxHash library (libxxhash 0.8.1, XXH64 with seed 0).
TEST(Checksum, MatchesReferenceXxh64) {
  EXPECT_EQ(xxh64(bytes_of("")), 0xef46db3751d8e999ull);
  EXPECT_EQ(xxh64(bytes_of("a")), 0xd24ec4f1a98c6e5bull);
  EXPECT_EQ(xxh64(bytes_of("abc")), 0x44bc2cf5ad770999ull);
  std::string long_input;
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < 256; ++i) long_input.push_back(static_cast<char>(i));
  }
  long_input += "kiln!";
  EXPECT_EQ(xxh64(bytes_of(long_input)), 0x21b24669dceb72d6ull);
}

TEST(Checksum, ZeroWindowHashesAsIfThoseBytesWereZero) {
  std::vector<std::byte> data(200);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7 + 1);
  // Windows inside a 32-byte stripe, across two stripes, and in the tail.
  for (size_t at : {0u, 5u, 28u, 60u, 190u, 192u}) {
    auto zeroed = data;
    const size_t end = std::min(at + 8, data.size());
    for (size_t i = at; i < end; ++i) zeroed[i] = std::byte{0};
    EXPECT_EQ(xxh64(data, at, at + 8), xxh64(zeroed)) << "window at " << at;
    EXPECT_NE(xxh64(data), xxh64(zeroed)) << "window at " << at;
  }
}

}  // namespace
}  // namespace kiln::format
