#pragma once
// Run configs: a plain `key = value` file, one setting per line, later lines win; `--set key=value` on the
// command line overrides the file. `#` starts a comment at the start of a line or after a space or tab, so
// `data.root = /data/run#2` keeps its `#`. `_base_ = other.conf` (MMAction2's inheritance) reads that file
// first, its path relative to this file's directory; several comma-separated bases are read in order, later
// ones winning, and this file's own keys override them all. Values are read by type when the run is built,
// each checked against its valid range, and every key the run never asked for is an error (a typo must not
// silently train the default):
//
//   _base_ = k200_tsn_r50.conf
//   model = tsn_r50_dnr
//   optim.lr = 0.1            # SGD
//   train.scales = 1, 0.875, 0.75, 0.66
//
// Error messages name the file and line (or `--set`) where the offending value was set, in a base file too.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tinyvid/core/device.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/io/file.hpp"
#include "tinyvid/core/parse.hpp"

namespace tv::train {

class Config {
 public:
  Config() = default;

  // A directory or other non-regular file is an error naming it (io::detail::read_file), never an empty config.
  static Config from_file(const std::string& path) {
    const std::vector<uint8_t> bytes = io::detail::read_file(path, "config");
    return from_string(std::string(bytes.begin(), bytes.end()), path);
  }

  static Config from_string(const std::string& text, const std::string& source = "<string>") {
    Config own;
    std::string bases, bases_where;
    std::istringstream in(text);
    std::string line;
    for (int64_t no = 1; std::getline(in, line); ++no) {
      line = trim(strip_comment(line));
      if (line.empty()) continue;
      const size_t eq = line.find('=');
      const std::string where = source + ":" + std::to_string(no);
      TV_CHECK(eq != std::string::npos, where, ": expected 'key = value', got '", line, "'");
      const std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
      if (key != kBase) {
        own.set(key, value, where);
        continue;
      }
      TV_CHECK(bases_where.empty(), where, ": _base_ is given twice (first at ", bases_where,
               "); list several files in one _base_, separated by commas");
      bases = value, bases_where = where;
    }
    if (bases_where.empty()) return own;
    Config c = read_bases(bases, source, bases_where);
    for (const auto& [k, e] : own.entries_) c.entries_[k] = e;
    return c;
  }

  // `key=value` as given to --set.
  void set(const std::string& assignment) {
    const size_t eq = assignment.find('=');
    TV_CHECK(eq != std::string::npos, "--set: expected key=value, got '", assignment, "'");
    set(trim(assignment.substr(0, eq)), trim(assignment.substr(eq + 1)), "--set " + assignment);
  }
  void set(const std::string& key, const std::string& value, const std::string& where) {
    TV_CHECK(key != kBase, where, ": _base_ names base files on a config file's own lines only");
    TV_CHECK(valid_key(key), where, ": expected a key of letters, digits, '_' and '.', got '", key, "'");
    entries_[key] = Entry{value, where};
  }

  bool has(const std::string& key) const { return entries_.count(key) > 0; }
  // Where a key was set (file:line or `--set key=value`), for messages about it; "config" when it is not.
  std::string where(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? "config" : it->second.where;
  }

  // Typed reads, without a fallback (the key is required) or with one. Either way the key counts as known,
  // and the value used is recorded for dump_resolved(). Numbers outside `range` are errors naming the line;
  // nan and infinities only pass where a range allows them.
  std::string str(const std::string& key) const {
    return read<std::string>(key, nullptr, [](const Entry& e) { return e.value; });
  }
  std::string str(const std::string& key, const std::string& fallback) const {
    return read<std::string>(key, &fallback, [](const Entry& e) { return e.value; });
  }
  int64_t integer(const std::string& key, const Range& range = {}) const {
    return scalar<int64_t>(key, nullptr, range);
  }
  int64_t integer(const std::string& key, int64_t fallback, const Range& range = {}) const {
    return scalar<int64_t>(key, &fallback, range);
  }
  double real(const std::string& key, const Range& range = {}) const { return scalar<double>(key, nullptr, range); }
  double real(const std::string& key, double fallback, const Range& range = {}) const {
    return scalar<double>(key, &fallback, range);
  }
  bool boolean(const std::string& key, bool fallback) const {
    return read<bool>(key, &fallback, [&](const Entry& e) {
      if (e.value == "true" || e.value == "1" || e.value == "yes" || e.value == "on") return true;
      if (e.value == "false" || e.value == "0" || e.value == "no" || e.value == "off") return false;
      TV_FAIL(e.where, ": expected true or false for '", key, "', got '", e.value, "'");
    });
  }
  // Comma-separated lists.
  std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& fallback) const {
    return read<std::vector<std::string>>(key, &fallback, [](const Entry& e) {
      std::vector<std::string> out;
      for (const std::string& item : split(e.value))
        if (!item.empty()) out.push_back(item);
      return out;
    });
  }
  std::vector<double> reals(const std::string& key, const std::vector<double>& fallback,
                            const Range& range = {}) const {
    return list<double>(key, fallback, range);
  }
  std::vector<int64_t> integers(const std::string& key, const std::vector<int64_t>& fallback,
                                const Range& range = {}) const {
    return list<int64_t>(key, fallback, range);
  }

  // The keys that start with prefix (e.g. "model." for the model's switches); they count as read.
  std::map<std::string, std::string> with_prefix(const std::string& prefix) const {
    std::map<std::string, std::string> out;
    for (const auto& [k, e] : entries_)
      if (k.compare(0, prefix.size(), prefix) == 0 && k.size() > prefix.size()) {
        out[k.substr(prefix.size())] = e.value;
        known_.insert(k);
        resolved_[k] = Resolved{e.value, false};
      }
    return out;
  }

  // Fails on the first key no part of the run asked for, listing the keys that are read.
  void check_all_used() const {
    for (const auto& [k, e] : entries_) {
      if (known_.count(k)) continue;
      std::string keys;
      for (const std::string& n : known_) keys += (keys.empty() ? "" : ", ") + n;
      TV_FAIL(e.where, ": unknown key '", k, "'; known keys: ", keys);
    }
  }

  // The settings as a config file (what was given, bases included, not the defaults).
  std::string dump() const {
    std::string out;
    for (const auto& [k, e] : entries_) out += k + " = " + e.value + "\n";
    return out;
  }

  // Every key read so far with the value the run used, given or defaulted (marked `# default`), as a config
  // file that reads back to the same run: for the work directory's log, after the run is built.
  std::string dump_resolved() const {
    std::string out;
    for (const auto& [k, r] : resolved_) out += k + " = " + r.value + (r.defaulted ? "  # default" : "") + "\n";
    return out;
  }

  std::map<std::string, std::string> values() const {
    std::map<std::string, std::string> out;
    for (const auto& [k, e] : entries_) out[k] = e.value;
    return out;
  }

 private:
  static constexpr const char* kBase = "_base_";

  struct Entry {
    std::string value, where;
  };
  struct Resolved {
    std::string value;
    bool defaulted = false;
  };

  // The one path of every typed read: marks the key known, parses the given value or takes the fallback
  // (nullptr: required), and records the text of what was used.
  template <class V, class Parse>
  V read(const std::string& key, const V* fallback, Parse parse) const {
    known_.insert(key);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      TV_CHECK(fallback != nullptr, "config: the key '", key, "' is required but not set");
      resolved_[key] = Resolved{text(*fallback), true};
      return *fallback;
    }
    V v = parse(it->second);
    resolved_[key] = Resolved{it->second.value, false};
    return v;
  }

  // Numbers, one or a comma-separated list, each in range.
  template <class T>
  static T number(const std::string& text, const std::string& where, const std::string& key, const Range& range) {
    if constexpr (std::is_same_v<T, int64_t>) return parse_int(text, where, range, key);
    else return parse_real(text, where, range, key);
  }
  template <class T>
  T scalar(const std::string& key, const T* fallback, const Range& range) const {
    return read<T>(key, fallback, [&](const Entry& e) { return number<T>(e.value, e.where, key, range); });
  }
  template <class T>
  std::vector<T> list(const std::string& key, const std::vector<T>& fallback, const Range& range) const {
    return read<std::vector<T>>(key, &fallback, [&](const Entry& e) {
      std::vector<T> out;
      for (const std::string& item : split(e.value)) out.push_back(number<T>(item, e.where, key, range));
      return out;
    });
  }

  static std::string text(const std::string& s) { return s; }
  static std::string text(int64_t x) { return std::to_string(x); }
  static std::string text(double x) { return Range::text(x); }
  static std::string text(bool b) { return b ? "true" : "false"; }
  template <class T>
  static std::string text(const std::vector<T>& v) {
    std::string out;
    for (const T& x : v) out += (out.empty() ? "" : ", ") + text(x);
    return out;
  }

  // The files a `_base_` line names, merged in order (later ones win). The files being read are kept per
  // thread, outermost first, so a cycle is an error naming the chain instead of endless recursion.
  static Config read_bases(const std::string& list, const std::string& source, const std::string& where) {
    namespace fs = std::filesystem;
    thread_local std::vector<std::string> chain;
    chain.push_back(source);
    struct Pop {
      ~Pop() { chain.pop_back(); }
    } pop;
    const std::vector<std::string> files = split(list);
    TV_CHECK(!list.empty() && std::none_of(files.begin(), files.end(), [](const std::string& f) { return f.empty(); }),
             where, ": expected _base_ = FILE[, FILE ...], got '", list, "'");
    Config c;
    for (const std::string& f : files) {
      const std::string path = (fs::path(source).parent_path() / f).lexically_normal().string();
      std::string names;
      for (const std::string& s : chain) names += s + " -> ";
      names += path;
      for (const std::string& s : chain) TV_CHECK(!same_file(s, path), where, ": _base_ cycle: ", names);
      std::error_code ec;
      TV_CHECK(fs::exists(path, ec), where, ": _base_ '", f, "' not found: ", names);
      for (const auto& [k, e] : from_file(path).entries_) c.entries_[k] = e;
    }
    return c;
  }
  static bool same_file(const std::string& a, const std::string& b) {
    std::error_code ea, eb;
    const auto ca = std::filesystem::weakly_canonical(a, ea), cb = std::filesystem::weakly_canonical(b, eb);
    return ea || eb ? a == b : ca == cb;
  }

  // The line without its comment: `#` at the start or after a blank starts one; inside a word it is text.
  static std::string strip_comment(const std::string& line) {
    for (size_t i = 0; i < line.size(); ++i)
      if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) return line.substr(0, i);
    return line;
  }
  static std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
  }
  static bool valid_key(const std::string& k) {
    return !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
    });
  }
  // Comma-separated items, trimmed; an empty value is an empty list, and every empty item is kept ("1, 2,"
  // has three) so that a reader can refuse it.
  static std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    if (trim(s).empty()) return out;
    for (size_t start = 0;;) {
      const size_t comma = s.find(',', start);
      out.push_back(trim(s.substr(start, comma - start)));
      if (comma == std::string::npos) return out;
      start = comma + 1;
    }
  }

  std::map<std::string, Entry> entries_;
  mutable std::set<std::string> known_;
  mutable std::map<std::string, Resolved> resolved_;
};

// The device a run computes on: config key `device`, spelled as PyTorch's torch.device (cpu, cuda, cuda:N).
struct DeviceChoice {
  Device device = Device::CPU;
  int64_t index = 0;  // cuda:N's N; only the first GPU runs so far
  std::string text() const { return device == Device::CPU ? "cpu" : "cuda:" + std::to_string(index); }
};

// `text` (cpu | cuda | cuda:N) as a device that this build and machine can run, else one tv::Error naming
// `where` (the config line or option it came from): a CUDA device asked of a build or a machine without one
// says why (the allocator's reason) here, before any work starts, instead of failing at the first tensor.
inline DeviceChoice parse_device(const std::string& text, const std::string& where) {
  DeviceChoice d;
  if (text == "cpu") return d;
  TV_CHECK(text.rfind("cuda", 0) == 0 && (text.size() == 4 || text[4] == ':'), where,
           ": expected device cpu, cuda or cuda:N, got '", text, "'");
  d.device = Device::CUDA;
  if (text.size() > 4) d.index = parse_int(text.substr(5), where, Range::at_least(0), "device");
  TV_CHECK(d.index == 0, where, ": device ", text, ": only the first GPU (cuda or cuda:0) is supported so far");
  if (!device_available(d.device)) {
    try {
      allocator(d.device);  // throws the reason: a build without CUDA, no GPU, no driver, a driver too old
    } catch (const Error& e) {
      std::string why = e.what();
      const std::string prefix = "tinyvid: ";
      if (why.compare(0, prefix.size(), prefix) == 0) why.erase(0, prefix.size());
      TV_FAIL(where, ": ", why);
    }
  }
  return d;
}

}  // namespace tv::train
