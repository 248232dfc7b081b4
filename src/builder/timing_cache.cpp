#include "builder/timing_cache.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kiln/status.h"

namespace kiln::builder {
namespace {

constexpr const char* kHeader = "kiln timing cache 1";

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\t') out += "\\t";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

bool unescape(const std::string& s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) return false;
    if (s[i] == '\\') out += '\\';
    else if (s[i] == 't') out += '\t';
    else if (s[i] == 'n') out += '\n';
    else return false;
  }
  return true;
}

std::string format_ms(double ms) {
  if (ms < 0) return "fail";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", ms);
  return buf;
}

bool parse_ms(const std::string& s, double& ms) {
  if (s == "fail") {
    ms = TimingCache::kFailed;
    return true;
  }
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  ms = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size() && ms >= 0 && ms < 1e12;
}

// Reads the whole file; nullopt when it does not exist, an error when it cannot be read.
Result<std::optional<std::string>> read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && !ec) return std::optional<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kInternal, str("cannot open it (", std::strerror(errno), ")"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status(StatusCode::kInternal, "read error");
  return std::optional<std::string>(ss.str());
}

}  // namespace

std::string fnv1a_hex(const void* data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string TimingCache::serialize(const std::map<std::string, double>& entries) {
  std::string body = std::string(kHeader) + "\n";
  for (const auto& [key, ms] : entries) body += escape(key) + "\t" + format_ms(ms) + "\n";
  return body + str("end ", entries.size(), " ", fnv1a_hex(body.data(), body.size()), "\n");
}

std::optional<std::map<std::string, double>> TimingCache::parse(const std::string& text,
                                                                std::string& why) {
  const std::string header = std::string(kHeader) + "\n";
  if (text.compare(0, header.size(), header) != 0) {
    why = "it does not start with '" + std::string(kHeader) + "'";
    return std::nullopt;
  }
  if (text.empty() || text.back() != '\n') {
    why = "it is truncated (no final newline)";
    return std::nullopt;
  }
  const size_t end_line = text.rfind('\n', text.size() - 2);  // start of the last line - 1
  const std::string last = text.substr(end_line + 1, text.size() - end_line - 2);
  const std::string body = text.substr(0, end_line + 1);
  size_t count = 0;
  char hash[17] = {};
  unsigned long long n = 0;
  if (std::sscanf(last.c_str(), "end %llu %16s", &n, hash) != 2 ||
      last != str("end ", n, " ", hash)) {
    why = "its last line is not 'end <entries> <hash>' (truncated?)";
    return std::nullopt;
  }
  if (fnv1a_hex(body.data(), body.size()) != hash) {
    why = "its checksum does not match its contents";
    return std::nullopt;
  }
  std::map<std::string, double> entries;
  size_t pos = header.size();
  while (pos < body.size()) {
    const size_t nl = body.find('\n', pos);
    const std::string line = body.substr(pos, nl - pos);
    pos = nl + 1;
    const size_t tab = line.find('\t');
    std::string key;
    double ms = 0;
    if (tab == std::string::npos || line.find('\t', tab + 1) != std::string::npos ||
        !unescape(line.substr(0, tab), key) || !parse_ms(line.substr(tab + 1), ms)) {
      why = str("entry ", count + 1, " is malformed");
      return std::nullopt;
    }
    entries[key] = ms;
    ++count;
  }
  if (count != n) {
    why = str("it says ", n, " entries but holds ", count);
    return std::nullopt;
  }
  return entries;
}

TimingCache TimingCache::load(const std::string& path, std::vector<std::string>& log) {
  TimingCache cache;
  cache.path_ = path;
  if (path.empty()) return cache;
  auto text = read_file(path);
  if (!text.ok()) {
    log.push_back(str("warning: timing cache '", path, "' ignored: ", text.status().message()));
    return cache;
  }
  if (!text->has_value()) {
    log.push_back(str("timing cache '", path, "': no file yet, starting empty"));
    return cache;
  }
  std::string why;
  auto entries = parse(**text, why);
  if (!entries) {
    log.push_back(str("warning: timing cache '", path, "' ignored: ", why));
    cache.dirty_ = true;  // replace it with a good one at the end of the build
    return cache;
  }
  cache.entries_ = std::move(*entries);
  log.push_back(str("timing cache '", path, "': loaded ", cache.entries_.size(), " timings"));
  return cache;
}

std::optional<double> TimingCache::find(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void TimingCache::put(const std::string& key, double ms) {
  entries_[key] = ms;
  added_[key] = ms;
  dirty_ = true;
}

void TimingCache::save(std::vector<std::string>& log) {
  if (path_.empty() || !dirty_) return;
  // Another build may have written the file since we loaded it: keep its timings too.
  std::map<std::string, double> merged;
  auto text = read_file(path_);
  std::string why;
  if (text.ok() && text->has_value())
    if (auto current = parse(**text, why)) merged = std::move(*current);
  for (const auto& [key, ms] : entries_) merged.emplace(key, ms);
  for (const auto& [key, ms] : added_) merged[key] = ms;
  const std::string out = serialize(merged);
  const std::string tmp = str(path_, ".tmp.", static_cast<long>(getpid()));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    f.flush();
    if (!f) {
      log.push_back(str("warning: timing cache '", path_, "' not saved: cannot write '", tmp, "'"));
      std::remove(tmp.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    log.push_back(str("warning: timing cache '", path_, "' not saved: rename failed (",
                      std::strerror(errno), ")"));
    std::remove(tmp.c_str());
    return;
  }
  dirty_ = false;
  log.push_back(str("timing cache '", path_, "': saved ", merged.size(), " timings (", added_.size(),
                    " new)"));
}

}  // namespace kiln::builder
