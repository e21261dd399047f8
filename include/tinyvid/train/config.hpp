#pragma once
// Run configs: a plain `key = value` file, one setting per line, `#` starts a comment, later lines win;
// `--set key=value` on the command line overrides the file. Values are read by type when the run is built,
// and every key the run never asked for is an error (a typo must not silently train the default):
//
//   model = tsn_r50_dnr
//   optim.lr = 0.1            # SGD
//   train.scales = 1, 0.875, 0.75, 0.66
//
// Error messages name the file and line (or `--set`) of the offending value.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tinyvid/core/error.hpp"

namespace tv::train {

class Config {
 public:
  Config() = default;

  static Config from_file(const std::string& path) {
    std::ifstream in(path);
    TV_CHECK(in.good(), "config: cannot open '", path, "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return from_string(ss.str(), path);
  }

  static Config from_string(const std::string& text, const std::string& source = "<string>") {
    Config c;
    std::istringstream in(text);
    std::string line;
    for (int64_t no = 1; std::getline(in, line); ++no) {
      const size_t hash = line.find('#');
      if (hash != std::string::npos) line.resize(hash);
      line = trim(line);
      if (line.empty()) continue;
      const size_t eq = line.find('=');
      const std::string where = source + ":" + std::to_string(no);
      TV_CHECK(eq != std::string::npos, where, ": expected 'key = value', got '", line, "'");
      c.set(trim(line.substr(0, eq)), trim(line.substr(eq + 1)), where);
    }
    return c;
  }

  // `key=value` as given to --set.
  void set(const std::string& assignment) {
    const size_t eq = assignment.find('=');
    TV_CHECK(eq != std::string::npos, "--set: expected key=value, got '", assignment, "'");
    set(trim(assignment.substr(0, eq)), trim(assignment.substr(eq + 1)), "--set " + assignment);
  }
  void set(const std::string& key, const std::string& value, const std::string& where) {
    TV_CHECK(valid_key(key), where, ": expected a key of letters, digits, '_' and '.', got '", key, "'");
    entries_[key] = Entry{value, where};
  }

  bool has(const std::string& key) const { return entries_.count(key) > 0; }

  std::string str(const std::string& key) const {
    const Entry& e = need(key);
    return e.value;
  }
  // Typed reads with a default: the key counts as known either way.
  std::string str(const std::string& key, const std::string& fallback) const {
    return or_default(key, fallback, [&] { return str(key); });
  }
  int64_t integer(const std::string& key, int64_t fallback) const {
    return or_default(key, fallback, [&] { return integer(key); });
  }
  int64_t integer(const std::string& key) const {
    const Entry& e = need(key);
    return parse_integer(e.value, key, e.where);
  }
  double real(const std::string& key, double fallback) const {
    return or_default(key, fallback, [&] { return real(key); });
  }
  double real(const std::string& key) const {
    const Entry& e = need(key);
    return parse_real(e.value, key, e.where);
  }
  bool boolean(const std::string& key, bool fallback) const {
    return or_default(key, fallback, [&] {
      const Entry& e = need(key);
      if (e.value == "true" || e.value == "1" || e.value == "yes" || e.value == "on") return true;
      if (e.value == "false" || e.value == "0" || e.value == "no" || e.value == "off") return false;
      TV_FAIL(e.where, ": expected true or false for '", key, "', got '", e.value, "'");
    });
  }
  // Comma-separated lists.
  std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& fallback) const {
    return or_default(key, fallback, [&] {
      std::vector<std::string> out;
      for (const std::string& item : split(need(key).value))
        if (!item.empty()) out.push_back(item);
      return out;
    });
  }
  std::vector<double> reals(const std::string& key, const std::vector<double>& fallback) const {
    return or_default(key, fallback, [&] {
      const Entry& e = need(key);
      std::vector<double> out;
      for (const std::string& item : split(e.value)) out.push_back(parse_real(item, key, e.where));
      return out;
    });
  }
  std::vector<int64_t> integers(const std::string& key, const std::vector<int64_t>& fallback) const {
    return or_default(key, fallback, [&] {
      const Entry& e = need(key);
      std::vector<int64_t> out;
      for (const std::string& item : split(e.value)) out.push_back(parse_integer(item, key, e.where));
      return out;
    });
  }

  // The keys that start with prefix (e.g. "model." for the model's switches); they count as read.
  std::map<std::string, std::string> with_prefix(const std::string& prefix) const {
    std::map<std::string, std::string> out;
    for (const auto& [k, e] : entries_)
      if (k.compare(0, prefix.size(), prefix) == 0 && k.size() > prefix.size()) {
        out[k.substr(prefix.size())] = e.value;
        known_.insert(k);
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

  // The settings as a config file (what was given, not the defaults), for the work directory.
  std::string dump() const {
    std::string out;
    for (const auto& [k, e] : entries_) out += k + " = " + e.value + "\n";
    return out;
  }

  std::map<std::string, std::string> values() const {
    std::map<std::string, std::string> out;
    for (const auto& [k, e] : entries_) out[k] = e.value;
    return out;
  }

 private:
  struct Entry {
    std::string value, where;
  };

  template <class V, class Read>
  V or_default(const std::string& key, const V& fallback, Read read) const {
    known_.insert(key);
    return has(key) ? V(read()) : fallback;
  }

  const Entry& need(const std::string& key) const {
    known_.insert(key);
    auto it = entries_.find(key);
    TV_CHECK(it != entries_.end(), "config: the key '", key, "' is required but not set");
    return it->second;
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
  static std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(s);
    while (std::getline(in, item, ',')) out.push_back(trim(item));
    return out;
  }
  static int64_t parse_integer(const std::string& v, const std::string& key, const std::string& where) {
    int64_t x = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    TV_CHECK(ec == std::errc() && p == v.data() + v.size() && !v.empty(), where, ": expected a whole number for '",
             key, "', got '", v, "'");
    return x;
  }
  static double parse_real(const std::string& v, const std::string& key, const std::string& where) {
    double x = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    TV_CHECK(ec == std::errc() && p == v.data() + v.size() && !v.empty(), where, ": expected a number for '", key,
             "', got '", v, "'");
    return x;
  }

  std::map<std::string, Entry> entries_;
  mutable std::set<std::string> known_;
};

}  // namespace tv::train
