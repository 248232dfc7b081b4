#include "base64.h"

#include <array>
#include <cstdint>

namespace kiln::torch_ext {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_decode_table() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr std::array<int8_t, 256> kDecode = make_decode_table();

}  // namespace

// Both directions write into a buffer sized up front (not a char at a time through
// std::string's append): engines are hundreds of MB, and loading one decodes all of it.
std::string base64_encode(std::string_view bytes) {
  std::string out((bytes.size() + 2) / 3 * 4, '\0');
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data());
  char* o = out.data();
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3, o += 4) {
    const uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8 | in[i + 2];
    o[0] = kAlphabet[v >> 18];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = kAlphabet[(v >> 6) & 63];
    o[3] = kAlphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{in[i]} << 16;
    if (rest == 2) v |= uint32_t{in[i + 1]} << 8;
    o[0] = kAlphabet[v >> 18];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    o[3] = '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;  // '=' only as the last one or two characters
  if (!text.empty() && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
  std::string out(text.size() / 4 * 3 - pad, '\0');
  const auto* in = reinterpret_cast<const uint8_t*>(text.data());
  char* o = out.data();
  const size_t full = text.size() - (pad ? 4 : 0);  // groups without padding
  for (size_t i = 0; i < full; i += 4, o += 3) {
    const int32_t v = int32_t{kDecode[in[i]]} << 18 | int32_t{kDecode[in[i + 1]]} << 12 |
                      int32_t{kDecode[in[i + 2]]} << 6 | int32_t{kDecode[in[i + 3]]};
    if (v < 0) return std::nullopt;  // a character outside the alphabet (its entry is -1)
    o[0] = static_cast<char>(v >> 16);
    o[1] = static_cast<char>((v >> 8) & 0xff);
    o[2] = static_cast<char>(v & 0xff);
  }
  if (pad) {  // the last group: two or three characters of the alphabet, then the padding
    const size_t i = full;
    const int8_t a = kDecode[in[i]], b = kDecode[in[i + 1]];
    const int8_t c = pad == 1 ? kDecode[in[i + 2]] : int8_t{0};
    if (a < 0 || b < 0 || c < 0) return std::nullopt;
    const uint32_t v = uint32_t(a) << 18 | uint32_t(b) << 12 | uint32_t(c) << 6;
    o[0] = static_cast<char>(v >> 16);
    if (pad == 1) o[1] = static_cast<char>((v >> 8) & 0xff);
  }
  return out;
}

}  // namespace kiln::torch_ext
