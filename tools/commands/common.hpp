#pragma once
// What every command of the `tinyvid` program (tools/tinyvid.cpp) builds on: option helpers on CLI11 that keep
// tinyvid's own messages (numbers are parsed by tv::parse_int, so a bad one names the option, the range and the
// text), and the help texts generated from the model registry.
#include <CLI/CLI.hpp>

#include <cctype>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <tinyvid/core/json.hpp>
#include <tinyvid/core/parse.hpp>
#include <tinyvid/tinyvid.hpp>
#include <tinyvid/train/config.hpp>

extern const char* const tinyvid_git_hash;  // tools/git_hash.cmake writes it at build time

namespace tvcli {

// A command's work, run once the whole command line has parsed; returns the exit code.
using Run = std::function<int()>;

// "tinyvid lists sthv1": the program and the (sub)commands down to cmd.
inline std::string command_path(const CLI::App& cmd) {
  std::string path = cmd.get_name();
  for (const CLI::App* p = cmd.get_parent(); p; p = p->get_parent()) path = p->get_name() + " " + path;
  return path;
}

// An option's or positional's text as given. It stays text until the command reads it, so a number is checked
// with tinyvid's message (and in the order the command reads its options, as before the move to CLI11); the
// default sits in the option, where --help shows it.
struct Text {
  std::string value;
  CLI::Option* option = nullptr;
  std::string help_hint;  // "see tinyvid forward --help"

  bool given() const { return option->count() > 0; }
  std::string name() const { return option->get_name(); }
  // The value, else the option's default (empty if it has none).
  std::string get() const { return given() ? value : option->get_default_str(); }
  std::string get(const std::string& fallback) const { return given() ? value : fallback; }
  std::string need() const {
    TV_CHECK(given(), "missing ", name(), " (", help_hint, ")");
    return value;
  }
  // A positional: what was expected names it ("a video FILE").
  std::string need_positional(const std::string& what) const {
    TV_CHECK(given(), "expected ", what, " after the command (", help_hint, ")");
    return value;
  }
  // A whole number in range (by default positive).
  int64_t integer(const tv::Range& range = tv::Range::at_least(1)) const { return tv::parse_int(get(), name(), range); }
};

// --name TYPE: a value (the last one counts when given twice); fallback: the default --help shows.
inline Text& add_text(CLI::App& cmd, Text& t, const std::string& name, const std::string& type, const std::string& help,
                      const std::string& fallback = "") {
  t.option = cmd.add_option(name, t.value, help)->type_name(type);
  t.option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  if (!fallback.empty()) t.option->default_str(fallback);
  t.help_hint = "see " + command_path(cmd) + " --help";
  return t;
}

inline bool looks_like_option(const std::string& word) {
  return word.size() > 1 && word[0] == '-' && !std::isdigit(static_cast<unsigned char>(word[1]));
}

// A word cmd did not take, as one line: an unknown option (and the ones cmd takes), or a stray argument.
inline std::string leftover_message(const CLI::App& cmd, const std::string& word) {
  const std::string hint = " (see " + command_path(cmd) + " --help)";
  if (!looks_like_option(word)) return "unexpected argument '" + word + "'" + hint;
  std::string takes;
  for (const CLI::Option* o : cmd.get_options())
    if (o->nonpositional() && o->get_name() != "--help") takes += (takes.empty() ? "" : ", ") + o->get_name();
  return "unknown option " + word.substr(0, word.find('=')) + "; this command takes " +
         (takes.empty() ? "no options" : takes) + hint;
}

// A positional argument (checked by the command, with its own message, when it is missing).
inline Text& add_positional(CLI::App& cmd, Text& t, const std::string& name, const std::string& help) {
  t.option = cmd.add_option(name, t.value, help)->type_name("");
  t.help_hint = "see " + command_path(cmd) + " --help";
  return t;
}

// --name alone. CLI11 would read --json=1 as a value; a flag here takes none, so that is an error.
inline void add_flag(CLI::App& cmd, bool& target, const std::string& name, const std::string& help) {
  cmd.add_flag(name, target, help)->check([name](const std::string& v) -> std::string {
    TV_CHECK(v == "true", "option ", name, " takes no value, got '", name, "=", v, "'");
    return "";
  });
}

// --set key=value (repeatable) and MMAction2's --cfg-options key=value key=value ... (every word up to the next
// option) into one map, in command-line order: a later setting of a key wins.
inline void add_sets(CLI::App& cmd, std::map<std::string, std::string>& set, const std::string& help) {
  auto store = [&set](const std::string& option) {
    return [&set, option](const std::vector<std::string>& words) {
      // --cfg-options alone leaves CLI11's one empty word
      TV_CHECK(!(option == "cfg-options" && words.size() == 1 && words[0].empty()),
               "option --cfg-options needs key=value words");
      for (const std::string& v : words) {
        const size_t eq = v.find('=');
        TV_CHECK(eq != std::string::npos && eq > 0, "--", option, " expects key=value, got '", v, "'");
        set[v.substr(0, eq)] = v.substr(eq + 1);
      }
    };
  };
  cmd.add_option_function<std::vector<std::string>>("--set", store("set"), help)
      ->type_name("KEY=VALUE")
      ->trigger_on_parse();
  cmd.add_option_function<std::vector<std::string>>("--cfg-options", store("cfg-options"),
                                                    "as --set, for every KEY=VALUE word up to the next option "
                                                    "(MMAction2's spelling)")
      ->expected(0, -1)
      ->allow_extra_args()
      ->trigger_on_parse()
      ->option_text("KEY=VALUE ...");
}

// The models and their switches, for the help of the commands that take --model: all from the registry.
inline std::string model_help() {
  namespace m = tv::models;
  std::string out = "models: " + m::model_name_pattern() + ", e.g. tsn_r50, tsn_r50_dnr, tsm_r50_dnr\n" +
                    "model switches (--set KEY=VALUE; the default after '='):\n";
  for (const auto& s : m::model_switches()) {
    std::string key = "  " + std::string(s.name) + "=" + m::switch_default(s);
    key.resize(std::max<size_t>(key.size() + 2, 34), ' ');
    out += key + s.help + "\n";
  }
  return out + "--set device=cpu|cuda|cuda:N: where the model runs (default cpu; only the first GPU so far)\n";
}

// Text as lines of at most `width` characters, broken at spaces.
inline std::string wrap(const std::string& text, size_t width = 110) {
  std::string out, line, word;
  std::istringstream words(text);
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) out += line + "\n", line.clear();
    line += (line.empty() ? "" : " ") + word;
  }
  return out + line;
}

// The --set help of the commands that read a config.
inline std::string config_set_help() {
  std::string names;
  for (const auto& n : tv::models::switch_names()) names += (names.empty() ? "" : ", ") + n;
  return "--set KEY=VALUE overrides a config key (configs/README.md lists them); the model switches are model.KEY\n" +
         wrap("(tinyvid summary --help describes them), KEY one of: " + names + ".");
}

// The model options of summary, forward and infer.
struct ModelArgs {
  Text model, num_classes, frames;
  std::map<std::string, std::string> set;

  void add(CLI::App& cmd) {
    add_text(cmd, model, "--model", "NAME", "the model (see models below)");
    add_text(cmd, num_classes, "--num-classes", "K", "classes of the head", "400");
    add_text(cmd, frames, "--frames", "T", "input frames per clip (TDN: 5 per segment, 40 for 8)", "8");
  }
  void add_sets(CLI::App& cmd) {
    tvcli::add_sets(cmd, set, "a model switch (see below), or device=cpu|cuda|cuda:N; repeatable");
  }
  // The config key `device` among the --set words (cpu by default), checked before the model is built.
  tv::train::DeviceChoice device() const {
    const auto it = set.find("device");
    return it == set.end() ? tv::train::DeviceChoice{}
                           : tv::train::parse_device(it->second, "--set device=" + it->second);
  }
  // The model's switches: the --set words other than `device`.
  tv::models::ModelConfig config() const {
    tv::models::ModelConfig cfg;
    cfg.num_classes = num_classes.integer();
    cfg.frames = frames.integer();
    cfg.set = set;
    cfg.set.erase("device");
    return cfg;
  }
};

inline std::string shape_text(const tv::Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += "x";
    out += std::to_string(s[i]);
  }
  return out;
}

}  // namespace tvcli
