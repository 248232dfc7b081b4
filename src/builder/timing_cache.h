#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::builder {

// Tactic timings by key (see select_tactics), kept in a text file between builds:
//
//   kiln timing cache 1
//   <key>\t<milliseconds, or "fail">      (keys escape \ tab and newline)
//   ...
//   end <entries> <FNV-1a 64 of everything above this line, hex>
//
// A missing file is an empty cache. A file that cannot be read, or whose header, lines or end
// line do not check out, is ignored with a line in the build log (and replaced when the build
// saves). Saving merges with what the file holds by then, writes a temporary file beside it and
// renames it over the old one, so a reader never sees half a file.
class TimingCache {
 public:
  static constexpr double kFailed = -1.0;  // a candidate that failed to run

  static TimingCache load(const std::string& path, std::vector<std::string>& log);

  // The recorded time in ms, kFailed, or nothing.
  std::optional<double> find(const std::string& key) const;
  void put(const std::string& key, double ms);
  size_t size() const { return entries_.size(); }
  bool dirty() const { return dirty_; }

  // Writes the cache (when dirty) as described above; failures are logged, not returned.
  void save(std::vector<std::string>& log);

  // The file's text for these entries, and its parse (nullopt with a reason when corrupt).
  static std::string serialize(const std::map<std::string, double>& entries);
  static std::optional<std::map<std::string, double>> parse(const std::string& text, std::string& why);

 private:
  std::string path_;
  std::map<std::string, double> entries_;
  std::map<std::string, double> added_;  // this build's new timings
  bool dirty_ = false;
};

// FNV-1a 64 as 16 hex digits (cache keys hash tactic data; the file's end line hashes its text).
std::string fnv1a_hex(const void* data, size_t size);

}  // namespace kiln::builder
