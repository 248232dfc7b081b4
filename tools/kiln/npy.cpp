#include "npy.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>

namespace kiln::cli {
namespace {

// Value of 'key': in the header dict, up to the next ',' or '}' (or the closing ')' for shape).
std::string dict_value(const std::string& header, const std::string& key) {
  auto pos = header.find("'" + key + "'");
  if (pos == std::string::npos) return {};
  pos = header.find(':', pos);
  if (pos == std::string::npos) return {};
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  if (pos < header.size() && header[pos] == '(') {
    auto end = header.find(')', pos);
    return end == std::string::npos ? std::string() : header.substr(pos, end - pos + 1);
  }
  auto end = header.find_first_of(",}", pos);
  return header.substr(pos, end - pos);
}

}  // namespace

Result<NpyArray> read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open '", path, "'");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    return invalid_argument("'", path, "' is not a .npy file");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t len16 = 0;
    in.read(reinterpret_cast<char*>(&len16), 2);
    header_len = len16;
  } else {
    in.read(reinterpret_cast<char*>(&header_len), 4);
  }
  if (!in || header_len > (1u << 20)) return invalid_argument("'", path, "': bad .npy header");
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  if (!in) return invalid_argument("'", path, "': truncated .npy header");
  NpyArray a;
  a.descr = dict_value(header, "descr");
  a.descr.erase(std::remove(a.descr.begin(), a.descr.end(), '\''), a.descr.end());
  if (dict_value(header, "fortran_order").find("True") != std::string::npos)
    return unsupported("'", path, "': Fortran-order arrays are not supported; save with np.ascontiguousarray");
  std::string shape = dict_value(header, "shape");
  int64_t numel = 1;
  for (size_t i = 0; i < shape.size();) {
    if (std::isdigit(static_cast<unsigned char>(shape[i]))) {
      size_t end = i;
      int64_t v = std::stoll(shape.substr(i), &end);
      a.shape.push_back(v);
      numel *= v;
      i += end;
    } else {
      ++i;
    }
  }
  size_t item = a.descr.size() >= 3 ? static_cast<size_t>(std::stoi(a.descr.substr(2))) : 0;
  if (item == 0) return unsupported("'", path, "': dtype '", a.descr, "' is not supported");
  a.data.resize(static_cast<size_t>(numel) * item);
  in.read(reinterpret_cast<char*>(a.data.data()), static_cast<std::streamsize>(a.data.size()));
  if (!in) return invalid_argument("'", path, "': file holds fewer bytes than its shape says");
  return a;
}

Status write_npy(const std::string& path, const NpyArray& a) {
  std::string shape = "(";
  for (size_t i = 0; i < a.shape.size(); ++i) shape += std::to_string(a.shape[i]) + (a.shape.size() == 1 ? "," : (i + 1 < a.shape.size() ? ", " : ""));
  shape += ")";
  std::string header = "{'descr': '" + a.descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) return not_found("cannot write '", path, "'");
  out.write("\x93NUMPY\x01\x00", 8);
  auto len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(a.data.data()), static_cast<std::streamsize>(a.data.size()));
  return out ? Status::Ok() : Status(StatusCode::kInternal, "failed writing '" + path + "'");
}

}  // namespace kiln::cli
