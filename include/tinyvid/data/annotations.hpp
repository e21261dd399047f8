#pragma once
// MMAction2's annotation lists (VideoDataset / RawframeDataset.load_data_list, 1.x), line for line, plus the
// converters MMAction2's tools/data scripts apply to the Kinetics CSV and the Something-Something V1 (';') and
// V2 (JSON) files. Every bad line is a tv::Error naming the file, the line and what was expected. Parsers take
// the text and the name to report, so files and in-memory text go through the same code.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/io/file.hpp"

namespace tv::data {

// One sample of a list. Videos: total_frames = -1 (the decoder counts them). labels: one entry for a
// single-label list (-1 when the line has none), all of them with multi_class.
struct Annotation {
  std::string path;  // data_prefix joined: the video file, or the frame folder
  int64_t total_frames = -1;
  int64_t offset = 0;  // rawframes with_offset: added to every sampled index when reading
  std::vector<int64_t> labels{-1};
  int64_t label() const { return labels.front(); }
  bool operator==(const Annotation&) const = default;
};

// A label that a list line cannot have: where it is (FILE:LINE), the label (-1: none given) and the message.
struct BadLabel {
  std::string source;
  size_t line = 0;
  int64_t label = -1;
  std::string message;  // "FILE:LINE: label 412 is outside [0, 400) (num_classes)"
};

struct ListOptions {
  std::string data_prefix{};      // data_prefix['video'] or data_prefix['img'], joined as os.path.join
  bool multi_class = false;       // `path l1 l2 ...` -> all labels (MMAction2 makes a multi-hot of them)
  // > 0: every line needs its labels in [0, num_classes), checked as the list loads, so a bad label is an error
  // naming FILE:LINE, not a failure mid-epoch (required with multi_class). 0: unchecked, save that a label is
  // never negative and a line may have none (an inference list; label -1).
  int64_t num_classes = 0;
  bool with_offset = false;       // rawframes only: `dir offset total_frames label`
  char delimiter = ' ';           // videos only: MMAction2 splits on exactly this, not on any whitespace
  // Null: a bad label is a tv::Error. Else each is appended here and its line kept (check-videos reports them all).
  std::vector<BadLabel>* bad_labels = nullptr;
};

namespace detail {

// Through io::detail::read_file, as every whole-file read: a directory, FIFO or oversized file is an error
// naming the path, not an empty list.
inline std::string read_text_file(const std::string& path) {
  const std::vector<uint8_t> bytes = io::detail::read_file(path, "annotation file");
  return std::string(bytes.begin(), bytes.end());
}

// Python's str.splitlines() for text files: \n, \r\n and \r end lines; a final newline adds no line.
inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n' || c == '\r') {
      lines.push_back(cur);
      cur.clear();
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  return lines;
}

inline bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

inline std::string strip(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// str.split(sep): empty fields kept.
inline std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

// str.split(): runs of whitespace separate, no empty fields.
inline std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string f; is >> f;) out.push_back(f);
  return out;
}

inline std::string where(const std::string& source, size_t line) { return source + ":" + std::to_string(line); }

// Python's int() on a field: optional sign, digits, nothing else.
inline int64_t parse_int(const std::string& field, const std::string& source, size_t line, const char* what) {
  int64_t v = 0;
  const char* b = field.data();
  const char* e = b + field.size();
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, v);
  TV_CHECK(b != e && ec == std::errc() && p == e, where(source, line), ": expected an integer ", what, ", got '", field,
           "'");
  return v;
}

// os.path.join(prefix, name): an absolute name wins, an empty prefix adds nothing.
inline std::string join_path(const std::string& prefix, const std::string& name) {
  if (prefix.empty() || (!name.empty() && name.front() == '/')) return name;
  return prefix.back() == '/' ? prefix + name : prefix + "/" + name;
}

inline std::vector<int64_t> parse_labels(const std::vector<std::string>& fields, size_t first, const ListOptions& o,
                                         const std::string& source, size_t line, const std::string& text) {
  TV_CHECK(o.num_classes >= 0 && (o.num_classes > 0 || !o.multi_class), "ListOptions: num_classes must be ",
           o.multi_class ? "> 0 with multi_class" : ">= 0 (0: unchecked)", ", got ", o.num_classes);
  std::vector<int64_t> labels;
  for (size_t i = first; i < fields.size(); ++i) labels.push_back(parse_int(fields[i], source, line, "label"));
  TV_CHECK(o.multi_class || labels.size() <= 1, where(source, line),
           ": expected one label (set multi_class for several), got ", labels.size(), " in '", text, "'");
  auto bad = [&](int64_t label, const std::string& problem) {
    TV_CHECK(o.bad_labels, where(source, line), ": ", problem);
    o.bad_labels->push_back({source, line, label, where(source, line) + ": " + problem});
  };
  const std::string range = "[0, " + std::to_string(o.num_classes) + ") (num_classes)";
  if (labels.empty()) {  // an inference list: label -1
    if (o.num_classes > 0) bad(-1, "expected a label in " + range + ", got none");
    return {-1};
  }
  for (int64_t l : labels) {
    if (l < 0) bad(l, "label " + std::to_string(l) + " is negative; labels are class indices from 0");
    else if (o.num_classes > 0 && l >= o.num_classes) bad(l, "label " + std::to_string(l) + " is outside " + range);
  }
  return labels;
}

inline void check_not_blank(const std::string& s, const std::string& source, size_t line, const char* format) {
  // MMAction2 turns a blank line into a sample with an empty path (videos) or an IndexError (rawframes).
  TV_CHECK(!s.empty(), where(source, line), ": expected '", format, "', got a blank line");
}

}  // namespace detail

// A video list: `path label`, `path` (label -1), or `path l1 l2 ...` with multi_class.
inline std::vector<Annotation> parse_video_list(const std::string& text, const std::string& source,
                                                const ListOptions& o = {}) {
  std::vector<Annotation> out;
  auto lines = detail::split_lines(text);
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string s = detail::strip(lines[n]);
    detail::check_not_blank(s, source, n + 1, "path label");
    auto f = detail::split_on(s, o.delimiter);
    // With the space delimiter, whitespace inside a field is a tab-separated line read wrongly; with another
    // delimiter a path may hold spaces, as in MMAction2.
    for (const std::string& field : f)
      TV_CHECK(!field.empty() && (o.delimiter != ' ' || std::none_of(field.begin(), field.end(), detail::is_space)),
               detail::where(source, n + 1),
               ": expected 'path label' separated by exactly one '", o.delimiter == '\t' ? std::string("\\t")
                                                                                     : std::string(1, o.delimiter),
               "' (the delimiter), got '", s, "'");
    Annotation a;
    a.path = detail::join_path(o.data_prefix, f[0]);
    a.labels = detail::parse_labels(f, 1, o, source, n + 1, s);
    out.push_back(std::move(a));
  }
  return out;
}

// A rawframe list: `dir total_frames label`, or `dir offset total_frames label` with with_offset; any
// whitespace separates. total_frames must be >= 1 and offset >= 0.
inline std::vector<Annotation> parse_rawframe_list(const std::string& text, const std::string& source,
                                                   const ListOptions& o = {}) {
  const char* format = o.with_offset ? "frame_dir offset total_frames label" : "frame_dir total_frames label";
  std::vector<Annotation> out;
  auto lines = detail::split_lines(text);
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string s = detail::strip(lines[n]);
    detail::check_not_blank(s, source, n + 1, format);
    auto f = detail::split_ws(s);
    const size_t need = o.with_offset ? 3 : 2;
    TV_CHECK(f.size() >= need, detail::where(source, n + 1), ": expected '", format, "', got '", s, "'");
    Annotation a;
    a.path = detail::join_path(o.data_prefix, f[0]);
    if (o.with_offset) {
      a.offset = detail::parse_int(f[1], source, n + 1, "offset");
      TV_CHECK(a.offset >= 0, detail::where(source, n + 1), ": expected offset >= 0, got ", a.offset);
    }
    a.total_frames = detail::parse_int(f[need - 1], source, n + 1, "total_frames");
    TV_CHECK(a.total_frames >= 1, detail::where(source, n + 1), ": expected total_frames >= 1, got ", a.total_frames);
    a.labels = detail::parse_labels(f, need, o, source, n + 1, s);
    out.push_back(std::move(a));
  }
  return out;
}

inline std::vector<Annotation> read_video_list(const std::string& path, const ListOptions& o = {}) {
  return parse_video_list(detail::read_text_file(path), path, o);
}
inline std::vector<Annotation> read_rawframe_list(const std::string& path, const ListOptions& o = {}) {
  return parse_rawframe_list(detail::read_text_file(path), path, o);
}

// The multi-hot vector MMAction2 builds from a multi_class sample's labels.
inline std::vector<float> multi_hot(const Annotation& a, int64_t num_classes) {
  std::vector<float> v(static_cast<size_t>(num_classes), 0.f);
  for (int64_t l : a.labels) {
    TV_CHECK(l >= 0 && l < num_classes, "multi_hot: expected labels in [0, ", num_classes, "), got ", l);
    v[static_cast<size_t>(l)] = 1.f;
  }
  return v;
}

// Writes a list back in MMAction2's format: `path label...` (videos) or `path [offset] total_frames label...`.
inline std::string format_video_list(const std::vector<Annotation>& list) {
  std::string out;
  for (const Annotation& a : list) {
    out += a.path;
    for (int64_t l : a.labels)
      if (l >= 0) out += ' ', out += std::to_string(l);
    out += "\n";
  }
  return out;
}
inline std::string format_rawframe_list(const std::vector<Annotation>& list, bool with_offset = false) {
  std::string out;
  for (const Annotation& a : list) {
    TV_CHECK(a.total_frames >= 1, "format_rawframe_list: '", a.path, "' has no frame count (total_frames = ",
             a.total_frames, "); count its frames first");
    out += a.path;
    if (with_offset) out += ' ', out += std::to_string(a.offset);
    out += ' ';
    out += std::to_string(a.total_frames);
    for (int64_t l : a.labels)
      if (l >= 0) out += ' ', out += std::to_string(l);
    out += "\n";
  }
  return out;
}

// A label map (label_map_k400.txt, sthv1/label_map.txt): one class name per line, line i = class i,
// names stripped as MMAction2 does. Blank and duplicate names are errors.
inline std::vector<std::string> parse_label_map(const std::string& text, const std::string& source) {
  std::vector<std::string> names;
  std::map<std::string, size_t> seen;
  auto lines = detail::split_lines(text);
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string s = detail::strip(lines[n]);
    TV_CHECK(!s.empty(), detail::where(source, n + 1), ": expected a class name, got a blank line");
    auto [it, fresh] = seen.emplace(s, n + 1);
    TV_CHECK(fresh, detail::where(source, n + 1), ": expected unique class names, '", s, "' is also on line ",
             it->second);
    names.push_back(s);
  }
  return names;
}
inline std::vector<std::string> read_label_map(const std::string& path) {
  return parse_label_map(detail::read_text_file(path), path);
}

namespace detail {
inline std::map<std::string, int64_t> index_of(const std::vector<std::string>& names) {
  std::map<std::string, int64_t> m;
  for (size_t i = 0; i < names.size(); ++i) m.emplace(names[i], static_cast<int64_t>(i));
  return m;
}
}  // namespace detail

// Kinetics CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`, or without `label` for the test split)
// -> video list entries `<class_dir>/<ytid>_<start:06>_<end:06>.mp4` as tools/data/kinetics (level 2; level 1
// drops the class folder). class_dir = the label with '"' removed and ' ' -> '_'; the label index is the class's
// line in the label map (label_map_k400.txt, whose order equals MMAction2's sorted class list).
inline std::vector<Annotation> parse_kinetics_csv(const std::string& text, const std::string& source,
                                                  const std::vector<std::string>& label_map, int level = 2) {
  TV_CHECK(level == 1 || level == 2, "parse_kinetics_csv: level must be 1 or 2, got ", level);
  auto underscored = [](std::string s) {
    s.erase(std::remove(s.begin(), s.end(), '"'), s.end());
    std::replace(s.begin(), s.end(), ' ', '_');
    return s;
  };
  std::map<std::string, int64_t> classes;
  for (size_t i = 0; i < label_map.size(); ++i) classes.emplace(underscored(label_map[i]), static_cast<int64_t>(i));
  // csv.reader: commas separate, double quotes enclose fields that may hold commas, "" is a quote.
  auto fields_of = [&](const std::string& line, size_t n) {
    std::vector<std::string> f(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (quoted) {
        if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') f.back() += '"', ++i;
        else if (c == '"') quoted = false;
        else f.back() += c;
      } else if (c == '"') {
        quoted = true;
      } else if (c == ',') {
        f.emplace_back();
      } else {
        f.back() += c;
      }
    }
    TV_CHECK(!quoted, detail::where(source, n), ": expected a closing '\"', got end of line");
    return f;
  };
  auto lines = detail::split_lines(text);
  TV_CHECK(!lines.empty(), source, ": expected a header line 'label,youtube_id,time_start,time_end,split', got an empty file");
  auto header = fields_of(lines[0], 1);
  const bool has_label = !header.empty() && detail::strip(header[0]) == "label";
  const size_t first = has_label ? 1 : 0;
  TV_CHECK(header.size() >= first + 4 && header[first] == "youtube_id" && header[first + 1] == "time_start" &&
               header[first + 2] == "time_end",
           detail::where(source, 1), ": expected the header 'label,youtube_id,time_start,time_end,split' (label optional), got '",
           lines[0], "'");
  std::vector<Annotation> out;
  for (size_t n = 1; n < lines.size(); ++n) {
    if (detail::strip(lines[n]).empty()) continue;  // csv.reader yields nothing for an empty line
    auto f = fields_of(lines[n], n + 1);
    TV_CHECK(f.size() == header.size(), detail::where(source, n + 1), ": expected ", header.size(), " fields like the header, got ",
             f.size(), " in '", lines[n], "'");
    auto seconds = [&](const std::string& s, const char* what) {  // int(float(x))
      char* end = nullptr;
      errno = 0;
      double v = std::strtod(s.c_str(), &end);
      TV_CHECK(!s.empty() && end == s.c_str() + s.size() && errno == 0, detail::where(source, n + 1), ": expected a number for ",
               what, ", got '", s, "'");
      return static_cast<int64_t>(v);
    };
    const std::string& ytid = f[first];
    TV_CHECK(!ytid.empty(), detail::where(source, n + 1), ": expected a youtube_id, got an empty field");
    char times[64];
    std::snprintf(times, sizeof times, "_%06lld_%06lld", static_cast<long long>(seconds(f[first + 1], "time_start")),
                  static_cast<long long>(seconds(f[first + 2], "time_end")));
    Annotation a;
    a.path = ytid + times + ".mp4";
    if (has_label) {
      std::string cls = underscored(f[0]);
      auto it = classes.find(cls);
      TV_CHECK(it != classes.end(), detail::where(source, n + 1), ": expected a class of the label map, got '", f[0], "'");
      a.labels = {it->second};
      if (level == 2) a.path = cls + "/" + a.path;
    }
    out.push_back(std::move(a));
  }
  return out;
}
inline std::vector<Annotation> read_kinetics_csv(const std::string& path, const std::vector<std::string>& label_map,
                                                 int level = 2) {
  return parse_kinetics_csv(detail::read_text_file(path), path, label_map, level);
}

// Something-Something V1 split file: `<id>;<class name>` per line (`<id>` alone in the test split -> label -1),
// class names from something-something-v1-labels.csv (= sthv1/label_map.txt). The path is the id: the frame
// folder; fill total_frames by counting its frames before format_rawframe_list.
inline std::vector<Annotation> parse_sthv1_split(const std::string& text, const std::string& source,
                                                 const std::vector<std::string>& label_map) {
  auto classes = detail::index_of(label_map);
  std::vector<Annotation> out;
  auto lines = detail::split_lines(text);
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string s = detail::strip(lines[n]);
    detail::check_not_blank(s, source, n + 1, "id;class name");
    auto f = detail::split_on(s, ';');
    TV_CHECK(f.size() <= 2 && !f[0].empty(), detail::where(source, n + 1), ": expected 'id;class name', got '", s, "'");
    Annotation a;
    a.path = f[0];
    if (f.size() == 2) {
      auto it = classes.find(f[1]);
      TV_CHECK(it != classes.end(), detail::where(source, n + 1), ": expected a class of the label map, got '", f[1], "'");
      a.labels = {it->second};
    }
    out.push_back(std::move(a));
  }
  return out;
}

namespace detail {
// Just enough JSON for the Sth-Sth V2 files: a value with the line it starts on.
struct Json {
  enum Kind { null, boolean, number, string, array, object } kind = null;
  std::string str;  // string, or the number's text
  std::vector<Json> items;
  // An object's members in file order, as two lists: a pair holding the still incomplete Json does not
  // compile with clang's libstdc++ checks.
  std::vector<std::string> keys;
  std::vector<Json> values;
  size_t line = 1;
  const Json* find(const std::string& key) const {
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &values[i];
    return nullptr;
  }
};

class JsonParser {
 public:
  JsonParser(const std::string& text, const std::string& source) : t_(text), src_(source) {}
  Json parse() {
    Json v = value(0);
    skip();
    if (i_ != t_.size()) fail("end of file");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* expected) {
    std::string got = i_ < t_.size() ? "'" + t_.substr(i_, 12) + "'" : std::string("end of file");
    TV_FAIL(where(src_, line_), ": invalid JSON: expected ", expected, ", got ", got);
  }
  void skip() {
    for (; i_ < t_.size() && is_space(t_[i_]); ++i_)
      if (t_[i_] == '\n') ++line_;
  }
  bool eat(char c) {
    skip();
    if (i_ < t_.size() && t_[i_] == c) return ++i_, true;
    return false;
  }
  std::string string_lit() {
    if (!eat('"')) fail("a string");
    std::string s;
    while (true) {
      if (i_ >= t_.size()) fail("a closing '\"'");
      char c = t_[i_++];
      if (c == '"') return s;
      if (c == '\n') ++line_;
      if (c != '\\') {
        s += c;
        continue;
      }
      if (i_ >= t_.size()) fail("an escape");
      char e = t_[i_++];
      switch (e) {
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'r': s += '\r'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'u': {
          if (i_ + 4 > t_.size()) fail("4 hex digits");
          unsigned cp = 0;
          for (int k = 0; k < 4; ++k) {
            char h = t_[i_++];
            cp = cp * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                 : (std::tolower(h) >= 'a' && std::tolower(h) <= 'f') ? std::tolower(h) - 'a' + 10
                                                                                                       : (fail("4 hex digits"), 0));
          }
          // UTF-8 (surrogate pairs are not joined: the Sth-Sth files are ASCII)
          if (cp < 0x80) s += static_cast<char>(cp);
          else if (cp < 0x800) s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
          else
            s += static_cast<char>(0xE0 | (cp >> 12)), s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                s += static_cast<char>(0x80 | (cp & 0x3F));
          break;
        }
        default: s += e;  // \" \\ \/
      }
    }
  }
  Json value(int depth) {
    if (depth > 64) fail("nesting of at most 64 levels");
    skip();
    Json v;
    v.line = line_;
    if (i_ >= t_.size()) fail("a value");
    char c = t_[i_];
    if (c == '{') {
      ++i_;
      v.kind = Json::object;
      if (eat('}')) return v;
      do {
        std::string k = string_lit();
        if (!eat(':')) fail("':'");
        v.keys.push_back(std::move(k));
        v.values.push_back(value(depth + 1));
      } while (eat(','));
      if (!eat('}')) fail("',' or '}'");
    } else if (c == '[') {
      ++i_;
      v.kind = Json::array;
      if (eat(']')) return v;
      do v.items.push_back(value(depth + 1));
      while (eat(','));
      if (!eat(']')) fail("',' or ']'");
    } else if (c == '"') {
      v.kind = Json::string;
      v.str = string_lit();
    } else if (t_.compare(i_, 4, "true") == 0 || t_.compare(i_, 5, "false") == 0) {
      v.kind = Json::boolean;
      v.str = t_[i_] == 't' ? "true" : "false";
      i_ += v.str.size();
    } else if (t_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      v.kind = Json::number;
      size_t b = i_;
      while (i_ < t_.size() && (std::isdigit(static_cast<unsigned char>(t_[i_])) || std::strchr("+-.eE", t_[i_]))) ++i_;
      v.str = t_.substr(b, i_ - b);
    } else {
      fail("a value");
    }
    return v;
  }
  const std::string& t_;
  const std::string& src_;
  size_t i_ = 0, line_ = 1;
};
}  // namespace detail

// something-something-v2-labels.json: {"<template>": "<index>", ...} -> class names by index.
inline std::vector<std::string> parse_sthv2_labels(const std::string& text, const std::string& source) {
  detail::Json j = detail::JsonParser(text, source).parse();
  TV_CHECK(j.kind == detail::Json::object, detail::where(source, j.line), ": expected an object {\"template\": \"index\"}");
  std::vector<std::string> names(j.keys.size());
  for (size_t m = 0; m < j.keys.size(); ++m) {
    const std::string& name = j.keys[m];
    const detail::Json& idx = j.values[m];
    TV_CHECK(idx.kind == detail::Json::string || idx.kind == detail::Json::number, detail::where(source, idx.line),
             ": expected the class index of '", name, "' as a string or number");
    int64_t i = detail::parse_int(idx.str, source, idx.line, "class index");
    TV_CHECK(i >= 0 && i < static_cast<int64_t>(names.size()) && names[static_cast<size_t>(i)].empty(),
             detail::where(source, idx.line), ": expected distinct class indices in [0, ", names.size(), "), got ", i,
             " for '", name, "'");
    names[static_cast<size_t>(i)] = name;
  }
  return names;
}

// something-something-v2-{train,validation,test}.json: [{"id": "78687", "template": "Holding [something] ...",
// ...}, ...] -> `<id><suffix> <label>`; the label is the template with '[' and ']' removed, looked up in the
// class names (test items have no template -> label -1). MMAction2's video lists use suffix ".webm".
inline std::vector<Annotation> parse_sthv2_split(const std::string& text, const std::string& source,
                                                 const std::vector<std::string>& label_map,
                                                 const std::string& suffix = ".webm") {
  auto classes = detail::index_of(label_map);
  detail::Json j = detail::JsonParser(text, source).parse();
  TV_CHECK(j.kind == detail::Json::array, detail::where(source, j.line), ": expected an array of {\"id\", \"template\"} objects");
  std::vector<Annotation> out;
  for (const detail::Json& item : j.items) {
    const detail::Json* id = item.kind == detail::Json::object ? item.find("id") : nullptr;
    TV_CHECK(id && (id->kind == detail::Json::string || id->kind == detail::Json::number) && !id->str.empty(),
             detail::where(source, item.line), ": expected an object with an \"id\"");
    Annotation a;
    a.path = id->str + suffix;
    if (const detail::Json* tpl = item.find("template")) {
      TV_CHECK(tpl->kind == detail::Json::string, detail::where(source, tpl->line), ": expected \"template\" to be a string");
      std::string name = tpl->str;
      name.erase(std::remove_if(name.begin(), name.end(), [](char c) { return c == '[' || c == ']'; }), name.end());
      auto it = classes.find(name);
      TV_CHECK(it != classes.end(), detail::where(source, tpl->line), ": expected a class of the label map, got '", name, "'");
      a.labels = {it->second};
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace tv::data
