// The tinyvid command line: one program, subcommands.
//   tinyvid summary --model NAME [--num-classes K] [--frames T] [--size S] [--set key=value ...] [--json]
//   tinyvid forward --model NAME --weights W.safetensors --input X.safetensors --output Y.safetensors
//                   [--num-classes K] [--frames T] [--set key=value ...]
// Errors are one line on stderr and exit code 2; `tinyvid help` lists the commands.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <tinyvid/io/safetensors.hpp>
#include <tinyvid/tinyvid.hpp>

namespace {

const char* kUsage =
    "usage: tinyvid COMMAND [options]\n"
    "commands:\n"
    "  summary --model NAME [--num-classes K] [--frames T] [--size S] [--set key=value ...] [--json]\n"
    "      per-layer output shapes, parameters and multiply-adds of a model for one clip\n"
    "  forward --model NAME --weights W.safetensors --input X.safetensors --output Y.safetensors\n"
    "          [--num-classes K] [--frames T] [--set key=value ...]\n"
    "      runs the model in eval mode on the tensor named 'input' (N*T x 3 x H x W) and writes the\n"
    "      class scores as 'output'\n"
    "  help\n"
    "models: (tsn|tsm)_r(18|34|50|101|152)[_dnr], e.g. tsn_r50, tsn_r50_dnr, tsm_r50_dnr\n"
    "switches (--set): width, shift_div, cross_layer, cross_temporal, ct_group_frames, ct_bidirectional,\n"
    "    ct_shared_direction_cell, interlace, reduction\n";

// Options after the command: --flag value pairs, repeated --set, and boolean flags.
struct Args {
  std::map<std::string, std::string> values;
  std::map<std::string, std::string> set;
  std::vector<std::string> switches;
  bool has(const std::string& k) const { return values.count(k) > 0; }
  bool flag(const std::string& k) const { return std::find(switches.begin(), switches.end(), k) != switches.end(); }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    auto it = values.find(k);
    return it == values.end() ? fallback : it->second;
  }
  std::string need(const std::string& k) const {
    TV_CHECK(has(k), "missing --", k, " (see tinyvid help)");
    return values.at(k);
  }
};

Args parse(int argc, char** argv, const std::vector<std::string>& boolean_flags) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    TV_CHECK(k.rfind("--", 0) == 0, "unexpected argument '", k, "' (options start with --; see tinyvid help)");
    k = k.substr(2);
    if (std::find(boolean_flags.begin(), boolean_flags.end(), k) != boolean_flags.end()) {
      a.switches.push_back(k);
      continue;
    }
    TV_CHECK(i + 1 < argc, "option --", k, " needs a value");
    const std::string v = argv[++i];
    if (k == "set") {
      const size_t eq = v.find('=');
      TV_CHECK(eq != std::string::npos && eq > 0, "--set expects key=value, got '", v, "'");
      a.set[v.substr(0, eq)] = v.substr(eq + 1);
    } else {
      a.values[k] = v;
    }
  }
  return a;
}

int64_t to_int(const std::string& what, const std::string& v) {
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TV_CHECK(used == v.size() && !v.empty() && x >= 1, "--", what, ": expected a positive whole number, got '", v, "'");
  return x;
}

tv::models::ModelConfig model_config(const Args& a) {
  tv::models::ModelConfig cfg;
  cfg.num_classes = to_int("num-classes", a.get("num-classes", "400"));
  cfg.frames = to_int("frames", a.get("frames", "8"));
  cfg.set = a.set;
  return cfg;
}

std::string shape_text(const tv::Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += "x";
    out += std::to_string(s[i]);
  }
  return out;
}

int summary(const Args& a) {
  const std::string name = a.need("model");
  const int64_t size = to_int("size", a.get("size", "224"));
  auto model = tv::models::make_model<float>(name, model_config(a));
  const auto rows = tv::models::summarize(*model, size);
  int64_t params = 0, macs = 0;
  for (auto& r : rows) params += r.params, macs += r.macs;
  if (a.flag("json")) {
    std::printf("{\"model\":\"%s\",\"frames\":%lld,\"size\":%lld,\"params\":%lld,\"macs\":%lld,\"layers\":[", name.c_str(),
                static_cast<long long>(model->frames()), static_cast<long long>(size), static_cast<long long>(params),
                static_cast<long long>(macs));
    for (size_t i = 0; i < rows.size(); ++i)
      std::printf("%s{\"name\":\"%s\",\"output\":\"%s\",\"params\":%lld,\"macs\":%lld}", i ? "," : "", rows[i].name.c_str(),
                  shape_text(rows[i].output).c_str(), static_cast<long long>(rows[i].params),
                  static_cast<long long>(rows[i].macs));
    std::printf("]}\n");
    return 0;
  }
  std::printf("%s: one clip of %lld frames at %lldx%lld\n", name.c_str(), static_cast<long long>(model->frames()),
              static_cast<long long>(size), static_cast<long long>(size));
  std::printf("%-52s %-18s %12s %16s\n", "layer", "output", "params", "MACs");
  for (auto& r : rows)
    std::printf("%-52s %-18s %12lld %16lld\n", r.name.c_str(), shape_text(r.output).c_str(), static_cast<long long>(r.params),
                static_cast<long long>(r.macs));
  std::printf("%-52s %-18s %12lld %16lld\n", "total", "", static_cast<long long>(params), static_cast<long long>(macs));
  std::printf("parameters %.2f M, multiply-adds %.2f G per clip\n", static_cast<double>(params) / 1e6, static_cast<double>(macs) / 1e9);
  return 0;
}

int forward(const Args& a) {
  auto model = tv::models::make_model<float>(a.need("model"), model_config(a));
  tv::io::load_weights(*model, a.need("weights"));
  const std::string input_path = a.need("input");
  auto inputs = tv::io::load_safetensors<float>(input_path);
  auto it = inputs.find("input");
  TV_CHECK(it != inputs.end(), input_path, ": no tensor named 'input' (expected N*T x 3 x H x W)");
  model->eval();
  tv::NoGradGuard no_grad;
  auto scores = model->forward(it->second);
  tv::io::save_safetensors<float>(a.need("output"), {{"output", scores}});
  std::printf("wrote %s: output %s\n", a.need("output").c_str(), shape_text(scores.shape()).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "help";
  try {
    if (command == "help" || command == "--help" || command == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (command == "summary") return summary(parse(argc, argv, {"json"}));
    if (command == "forward") return forward(parse(argc, argv, {}));
    std::fprintf(stderr, "tinyvid: unknown command '%s'\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinyvid %s: %s\n", command.c_str(), e.what());
    return 2;
  }
}
