#include "format/checksum.h"

#include <algorithm>
#include <cstring>

namespace kiln::format {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ull;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t round(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  return rotl(acc, 31) * kP1;
}

uint64_t merge_round(uint64_t acc, uint64_t val) {
  acc ^= round(0, val);
  return acc * kP1 + kP4;
}

// Little-endian loads (the file format is little-endian, as FlatBuffers is).
uint64_t load64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint32_t load32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Points at data[pos, pos + len), or at a zero-patched copy in `scratch` when that range
// overlaps the zeroed window.
const uint8_t* window(const uint8_t* data, size_t pos, size_t len, size_t zb, size_t ze,
                      uint8_t* scratch) {
  if (ze <= pos || zb >= pos + len) return data + pos;
  std::memcpy(scratch, data + pos, len);
  size_t from = std::max(zb, pos) - pos;
  size_t to = std::min(ze, pos + len) - pos;
  std::memset(scratch + from, 0, to - from);
  return scratch;
}

}  // namespace

uint64_t xxh64(std::span<const std::byte> bytes, size_t zero_begin, size_t zero_end) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t len = bytes.size();
  uint8_t scratch[32];
  size_t pos = 0;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = kP1 + kP2, v2 = kP2, v3 = 0, v4 = 0 - kP1;
    for (; pos + 32 <= len; pos += 32) {
      const uint8_t* p = window(data, pos, 32, zero_begin, zero_end, scratch);
      v1 = round(v1, load64(p));
      v2 = round(v2, load64(p + 8));
      v3 = round(v3, load64(p + 16));
      v4 = round(v4, load64(p + 24));
    }
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge_round(h, v1);
    h = merge_round(h, v2);
    h = merge_round(h, v3);
    h = merge_round(h, v4);
  } else {
    h = kP5;
  }
  h += static_cast<uint64_t>(len);

  // Indices, not pointer bumps: `data` may be null when the input is empty.
  const size_t tail = len - pos;
  const uint8_t* p = window(data, pos, tail, zero_begin, zero_end, scratch);
  size_t i = 0;
  for (; i + 8 <= tail; i += 8) {
    h ^= round(0, load64(p + i));
    h = rotl(h, 27) * kP1 + kP4;
  }
  if (i + 4 <= tail) {
    h ^= static_cast<uint64_t>(load32(p + i)) * kP1;
    h = rotl(h, 23) * kP2 + kP3;
    i += 4;
  }
  for (; i < tail; ++i) {
    h ^= p[i] * kP5;
    h = rotl(h, 11) * kP1;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

}  // namespace kiln::format
