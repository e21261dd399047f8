// The tinyvid command line: one program, subcommands.
//   tinyvid summary --model NAME [--num-classes K] [--frames T] [--size S] [--set key=value ...] [--json]
//   tinyvid forward --model NAME --weights W.safetensors --input X.safetensors --output Y.safetensors
//                   [--num-classes K] [--frames T] [--set key=value ...]
// With video (TINYVID_WITH_VIDEO, i.e. built against tinyvid::video):
//   tinyvid synth --out DIR [--classes N] [--train-per-class N] [--val-per-class N] [--size S] [--frames T] [--seed S]
//   tinyvid probe FILE [--json]
//   tinyvid check-videos LIST [--data-prefix DIR] [--num-classes K] [--json]
//   tinyvid frames FILE --indices 0,37,79 --out DIR [--size WxH]
//   tinyvid lists (kinetics200|kinetics|sthv1|sthv2) ...   (tools/list_commands.hpp)
//   tinyvid train / test / infer ...                        (tools/train_commands.hpp)
//   tinyvid extract-frames LIST [--data-prefix DIR] --out OUT [--short-side S] [--quality Q] [--template T]
//                          [--threads N] [--rawframe-list FILE]
// Errors are one line on stderr and exit code 2; `tinyvid help` lists the commands.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <tinyvid/core/parse.hpp>
#include <tinyvid/io/safetensors.hpp>
#include <tinyvid/tinyvid.hpp>

#ifdef TINYVID_WITH_VIDEO
#include <tinyvid/data/frames.hpp>
#include <tinyvid/data/kinetics200.hpp>
#include <tinyvid/data/annotations.hpp>
#include <tinyvid/data/synth.hpp>
#include <tinyvid/data/transforms.hpp>
#include <tinyvid/data/video.hpp>
#include <tinyvid/train/trainer.hpp>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>
#endif

extern const char* const tinyvid_git_hash;  // tools/git_hash.cmake writes it at build time

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
#ifdef TINYVID_WITH_VIDEO
    "  train CONFIG [--work-dir D] [--resume [STATE]] [--force] [--allow-change KEY,...] [--set key=value ...]\n"
    "        [--stop-after-iters N] [--no-progress] [--quiet]\n"
    "      trains the config's model (configs/README.md lists the keys) into D (default work_dirs/<config name>):\n"
    "      log.json (MMAction2's fields), train.log, epoch_N / latest / best weights, the training state,\n"
    "      curves.png. A D with files is refused unless --resume continues its run (or STATE's) or --force\n"
    "      starts a new run in D_<timestamp>; a resume with other settings needs --allow-change KEY (or all).\n"
    "      Ctrl-C or SIGTERM saves at the next safe point; --resume continues exactly\n"
    "  test CONFIG CHECKPOINT [--views CLIPSxCROPS] [--out DIR] [--dump FILE] [--set key=value ...] [--json]\n"
    "       [--no-progress]\n"
    "      multi-view test (e.g. --views 10x3): top-1, top-5, mean class accuracy; writes results.json,\n"
    "      per_class.csv and confusion.png into DIR (default: CHECKPOINT's folder/test/<name>_<views>);\n"
    "      --dump writes every video's path, label and scores as JSON lines\n"
    "  infer (--config C | --model NAME [--num-classes K] [--frames T] [--size S]) --weights W --video FILE\n"
    "        [--labels L] [--set key=value ...] [--json]\n"
    "      the top-5 classes of one video\n"
    "  synth --out DIR [--classes N] [--train-per-class N] [--val-per-class N] [--size S] [--frames T] [--seed S]\n"
    "      writes the synthetic action dataset: DIR/videos/<class>/*.mp4, DIR/train_list.txt, DIR/val_list.txt,\n"
    "      DIR/classes.txt (train with data prefix DIR/videos); defaults 10 classes, 100 train and 20 val\n"
    "      videos per class, 112x112, 32 frames, seed 0; an interrupted run resumes where it stopped\n"
    "  probe FILE [--json]\n"
    "      container, codec, size, fps, decodable frame count and duration of a video\n"
    "  check-videos LIST [--data-prefix DIR] [--num-classes K] [--json]\n"
    "      opens and decodes every video of an MMAction2 video list and checks its labels (in [0, K) with\n"
    "      --num-classes, else not negative); lists the bad videos and labels (FILE:LINE), exit code 1 if any\n"
    "  lists kinetics200 --ids-dir D --val-csv F [--train-csv F] --out DIR\n"
    "  lists kinetics --csv F --label-map F --out LIST [--level 1|2]\n"
    "  lists sthv1 --split F --labels F --frames-dir D --out LIST [--rgb-prefix P]\n"
    "  lists sthv2 --split F.json --labels F.json --out LIST [--suffix .webm]\n"
    "      MMAction2's annotation lists from the datasets' own files (Kinetics-200 from the official id lists)\n"
    "  frames FILE --indices 0,37,79 --out DIR [--size WxH]\n"
    "      writes those frames as DIR/frame_000037.png ..., resized to WxH if given (-1x256: short side 256,\n"
    "      ratio kept, as MMAction2's Resize(scale=(-1, 256)))\n"
    "  extract-frames LIST [--data-prefix DIR] --out OUT [--short-side S] [--quality Q] [--template T]\n"
    "                 [--threads N] [--rawframe-list FILE]\n"
    "      every frame of every video of the list as JPEG (MMAction2 rawframes): OUT/<video path without\n"
    "      extension>/img_00001.jpg ... (T, default img_{:05d}.jpg); short side resized to S (default 0: native\n"
    "      size), quality Q (95), N videos at once (default: the cores); writes the RawframeDataset list (default\n"
    "      OUT/<list name>_rawframes.txt, for data prefix OUT). A re-run skips completed videos; bad ones are\n"
    "      listed, exit code 1 if any\n"
#endif
    "  help\n"
    "options: --name value or --name=value; where --set is taken, --cfg-options key=value key=value ... sets\n"
    "    every word up to the next option (MMAction2's spelling)\n"
    "models: (tsn|tsm)_r(18|34|50|101|152)[_dnr], e.g. tsn_r50, tsn_r50_dnr, tsm_r50_dnr\n"
    "switches (--set): width, shift_div, cross_layer, cross_temporal, ct_group_frames, ct_bidirectional,\n"
    "    ct_shared_direction_cell, interlace, reduction, norm_group_clips\n";

// Options after the command: --flag value pairs (or --flag=value), repeated --set key=value, and boolean flags.
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

// The options a command takes: `values` take a value (--out DIR; "set" is the repeatable --set key=value),
// `flags` stand alone (--json). Anything else is an error: a typo must not be ignored silently.
struct Options {
  std::vector<std::string> values = {}, flags = {};
};

// first: the index of the first option (after the command and its positional argument, if any). Where a
// command takes --set, --cfg-options k=v k2=v2 ... (MMAction2's spelling) sets every word up to the next
// option.
Args parse(int argc, char** argv, const Options& known, int first = 2) {
  auto listed = [](const std::vector<std::string>& v, const std::string& k) { return std::find(v.begin(), v.end(), k) != v.end(); };
  auto is_option = [](const std::string& word) { return word.rfind("--", 0) == 0; };
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string k = argv[i];
    TV_CHECK(is_option(k), "unexpected argument '", k, "' (options start with --; see tinyvid help)");
    k = k.substr(2);
    std::vector<std::string> words;  // the option's values
    if (const size_t eq = k.find('='); eq != std::string::npos) {
      words.push_back(k.substr(eq + 1));
      k.resize(eq);
    }
    const bool sets = k == "set" || k == "cfg-options";
    if (listed(known.flags, k)) {
      TV_CHECK(words.empty(), "option --", k, " takes no value, got '", argv[i], "'");
      a.switches.push_back(k);
      continue;
    }
    if (!listed(known.values, sets ? "set" : k)) {
      std::string all;
      for (const auto& v : known.values)
        all += (all.empty() ? "--" : ", --") + v + (v == "set" ? " key=value, --cfg-options key=value ..." : "");
      for (const auto& f : known.flags) all += (all.empty() ? "--" : ", --") + f;
      TV_FAIL("unknown option --", k, "; this command takes ", all.empty() ? "no options" : all, " (see tinyvid help)");
    }
    if (k == "cfg-options") {
      while (i + 1 < argc && !is_option(argv[i + 1])) words.push_back(argv[++i]);
      TV_CHECK(!words.empty(), "option --cfg-options needs key=value words");
    } else if (words.empty()) {
      TV_CHECK(i + 1 < argc, "option --", k, " needs a value");
      words.push_back(argv[++i]);
    }
    for (const std::string& v : words) {
      if (!sets) {
        a.values[k] = v;
        continue;
      }
      const size_t eq = v.find('=');
      TV_CHECK(eq != std::string::npos && eq > 0, "--", k, " expects key=value, got '", v, "'");
      a.set[v.substr(0, eq)] = v.substr(eq + 1);
    }
  }
  return a;
}

// A whole number given to --option, by default positive.
int64_t to_int(const std::string& option, const std::string& v, const tv::Range& range = tv::Range::at_least(1)) {
  return tv::parse_int(v, "--" + option, range);
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
  tv::check_finite(it->second, input_path + ": tensor 'input'");  // the model checks too, but cannot name the file
  model->eval();
  tv::NoGradGuard no_grad;
  auto scores = model->forward(it->second);
  tv::io::save_safetensors<float>(a.need("output"), {{"output", scores}});
  std::printf("wrote %s: output %s\n", a.need("output").c_str(), shape_text(scores.shape()).c_str());
  return 0;
}

#ifdef TINYVID_WITH_VIDEO
// The positional argument after the command (a file), or an error naming what was expected.
std::string positional(int argc, char** argv, const char* what) {
  TV_CHECK(argc > 2 && std::string(argv[2]).rfind("--", 0) != 0, "expected ", what, " after the command (see tinyvid help)");
  return argv[2];
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

int synth(const Args& a) {
  tv::data::SynthOptions o;
  const auto& names = tv::data::synth_class_names();
  const int64_t n_classes = to_int("classes", a.get("classes", std::to_string(names.size())));
  TV_CHECK(n_classes <= static_cast<int64_t>(names.size()), "--classes: expected at most ", names.size(), ", got ", n_classes);
  o.classes.assign(names.begin(), names.begin() + n_classes);
  // 0 videos of a split is allowed (a val-only set), so these are read without to_int's >= 1 rule.
  auto count = [&](const char* k, int64_t fallback) {
    return to_int(k, a.get(k, std::to_string(fallback)), tv::Range::at_least(0));
  };
  o.train_per_class = count("train-per-class", o.train_per_class);
  o.val_per_class = count("val-per-class", o.val_per_class);
  o.size = to_int("size", a.get("size", std::to_string(o.size)));
  o.frames = to_int("frames", a.get("frames", std::to_string(o.frames)));
  o.seed = static_cast<uint64_t>(count("seed", 0));
  o.progress = true;
  const std::string out = a.need("out");
  const auto r = tv::data::write_synth_dataset(out, o);
  std::printf("synth: %lld videos written, %lld already complete, in %.1f s; train with data prefix %s\n",
              static_cast<long long>(r.written), static_cast<long long>(r.skipped), r.seconds,
              (std::filesystem::path(out) / "videos").string().c_str());
  return 0;
}

int probe(int argc, char** argv) {
  const std::string file = positional(argc, argv, "a video FILE");
  const Args a = parse(argc, argv, {.flags = {"json"}}, 3);
  tv::data::VideoReader r(file, 1);
  const int64_t frames = r.count_decoded();  // a diagnostic: every frame decoded, nothing taken on trust
  if (a.flag("json")) {
    std::printf("{\"file\":%s,\"container\":%s,\"codec\":%s,\"width\":%lld,\"height\":%lld,\"fps\":%.6g,\"frames\":%lld,"
                "\"duration\":%.6g,\"rotation\":%d}\n",
                json_string(file).c_str(), json_string(r.container()).c_str(), json_string(r.codec()).c_str(),
                static_cast<long long>(r.width()), static_cast<long long>(r.height()), r.fps(),
                static_cast<long long>(frames), r.duration(), r.rotation());
  } else {
    std::printf("file       %s\ncontainer  %s\ncodec      %s\nsize       %lldx%lld\nfps        %.6g\nframes     %lld\n"
                "duration   %.3f s\nrotation   %d\n",
                file.c_str(), r.container().c_str(), r.codec().c_str(), static_cast<long long>(r.width()),
                static_cast<long long>(r.height()), r.fps(), static_cast<long long>(frames), r.duration(), r.rotation());
  }
  return 0;
}

// Decodes every frame of a file (and converts the first to RGB); a bad file is an error.
void test_decode(const std::string& path) {
  tv::data::VideoReader r(path, 1);
  r.count_decoded();
  r.frame(0);
}

int check_videos(int argc, char** argv) {
  const std::string list = positional(argc, argv, "a video LIST");
  const Args a = parse(argc, argv, {.values = {"data-prefix", "num-classes"}, .flags = {"json"}}, 3);
  // Labels are checked with the videos and every bad one reported by FILE:LINE: against --num-classes when
  // given (a line without a label is bad then too), else only for being negative.
  std::vector<tv::data::BadLabel> bad_labels;
  tv::data::ListOptions lo;
  lo.data_prefix = a.get("data-prefix");
  if (a.has("num-classes")) lo.num_classes = to_int("num-classes", a.get("num-classes"));
  lo.bad_labels = &bad_labels;
  const auto anns = tv::data::read_video_list(list, lo);
  std::vector<std::string> errors(anns.size());
  std::atomic<size_t> next{0};
  int64_t bad = 0;
  std::mutex mu;  // guards bad and the progress line
  tv::ProgressLine progress("check-videos", static_cast<int64_t>(anns.size()), "videos");
  auto worker = [&] {
    for (size_t k; (k = next.fetch_add(1)) < anns.size();) {
      std::string error;
      try {
        test_decode(tv::data::video_file(anns[k].path));
      } catch (const std::exception& e) {
        error = e.what();
      }
      std::lock_guard<std::mutex> lock(mu);
      errors[k] = error;
      bad += !error.empty();
      progress.advance(1, std::to_string(bad) + " bad");
    }
  };
  // Two workers: decoding is mostly single-threaded per file, and two keep a disk busy without thrashing it.
  std::thread second(worker);
  worker();
  second.join();
  progress.finish();
  if (a.flag("json")) {
    std::printf("{\"list\":%s,\"checked\":%zu,\"bad\":[", json_string(list).c_str(), anns.size());
    bool first = true;
    for (size_t k = 0; k < anns.size(); ++k)
      if (!errors[k].empty()) {
        std::printf("%s{\"path\":%s,\"error\":%s}", first ? "" : ",", json_string(anns[k].path).c_str(),
                    json_string(errors[k]).c_str());
        first = false;
      }
    std::printf("],\"bad_labels\":[");
    for (size_t k = 0; k < bad_labels.size(); ++k)
      std::printf("%s{\"line\":%zu,\"label\":%lld,\"error\":%s}", k ? "," : "", bad_labels[k].line,
                  static_cast<long long>(bad_labels[k].label), json_string(bad_labels[k].message).c_str());
    std::printf("]}\n");
  } else {
    for (size_t k = 0; k < anns.size(); ++k)
      if (!errors[k].empty()) std::printf("BAD %s: %s\n", anns[k].path.c_str(), errors[k].c_str());
    for (const auto& b : bad_labels) std::printf("BAD LABEL %s\n", b.message.c_str());
    std::printf("checked %zu videos of %s: %lld bad, %zu bad labels\n", anns.size(), list.c_str(),
                static_cast<long long>(bad), bad_labels.size());
  }
  return bad > 0 || !bad_labels.empty() ? 1 : 0;
}

int frames(int argc, char** argv) {
  const std::string file = positional(argc, argv, "a video FILE");
  const Args a = parse(argc, argv, {.values = {"indices", "out", "size"}}, 3);
  std::vector<int64_t> indices;
  for (const std::string& f : tv::data::detail::split_on(a.need("indices"), ','))
    indices.push_back(to_int("indices", f, tv::Range::at_least(0)));
  const std::string out = a.need("out");
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  TV_CHECK(!ec, "cannot create '", out, "': ", ec.message());
  tv::data::VideoReader r(file);
  tv::data::Clip clip = r.read(indices);
  if (a.has("size")) {
    // WxH exactly, or -1xS / Sx-1: short side S, ratio kept (MMAction2's Resize(scale=(-1, S))); the loader's
    // OpenCV-exact bilinear resize.
    const std::string size = a.get("size");
    const size_t x = size.find('x');
    auto side = [&](const std::string& v) { return v == "-1" ? int64_t{-1} : to_int("size", v); };
    TV_CHECK(x != std::string::npos, "--size: expected WxH such as 224x224 or -1x256, got '", size, "'");
    const int64_t w = side(size.substr(0, x)), h = side(size.substr(x + 1));
    TV_CHECK(w > 0 || h > 0, "--size: at most one side may be -1, got '", size, "'");
    clip = tv::data::Resize{.scale = {w, h}, .keep_ratio = w < 0 || h < 0}(std::move(clip));
  }
  for (size_t k = 0; k < indices.size(); ++k) {
    char name[32];
    std::snprintf(name, sizeof(name), "frame_%06lld.png", static_cast<long long>(indices[k]));
    const std::string path = (std::filesystem::path(out) / name).string();
    tv::data::write_png(path, clip[k]);
    std::printf("%s\n", path.c_str());
  }
  return 0;
}

#include "train_commands.hpp"
#include "list_commands.hpp"
#include "extract_frames.hpp"
#endif

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "help";
  try {
    if (command == "help" || command == "--help" || command == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (command == "summary")
      return summary(parse(argc, argv, {.values = {"model", "size", "num-classes", "frames", "set"}, .flags = {"json"}}));
    if (command == "forward")
      return forward(parse(argc, argv, {.values = {"model", "weights", "input", "output", "num-classes", "frames", "set"}}));
#ifdef TINYVID_WITH_VIDEO
    // FFmpeg's info lines (x264's banner per file) and warnings about damaged files would bury our output;
    // what matters comes back as a tv::Error. check-videos reports every bad file itself.
    av_log_set_level(command == "check-videos" || command == "extract-frames" ? AV_LOG_FATAL : AV_LOG_ERROR);
    if (command == "synth")
      return synth(parse(argc, argv, {.values = {"out", "classes", "train-per-class", "val-per-class", "size", "frames", "seed"}}));
    if (command == "probe") return probe(argc, argv);
    if (command == "check-videos") return check_videos(argc, argv);
    if (command == "frames") return frames(argc, argv);
    if (command == "extract-frames") return extract_frames(argc, argv);
    if (command == "lists") return lists_command(argc, argv);
    if (command == "train") return train_command(argc, argv);
    if (command == "test") return test_command(argc, argv);
    if (command == "infer") return infer_command(argc, argv);
#endif
    std::fprintf(stderr, "tinyvid: unknown command '%s'\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const std::bad_alloc&) {
    // tinyvid's own allocations say what they wanted (tv::Error); this is a standard container's.
    std::fprintf(stderr, "tinyvid %s: out of memory (a standard-library allocation failed); use a smaller batch, clip "
                 "or model, or give the process more memory\n", command.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinyvid %s: %s\n", command.c_str(), e.what());
    return 2;
  }
}
