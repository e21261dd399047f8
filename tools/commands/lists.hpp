#pragma once
// tinyvid lists KIND: the annotation files MMAction2's tools/data scripts make, from the datasets' own files.
//   tinyvid lists kinetics200 --ids-dir D --val-csv kinetics-400_val.csv [--train-csv kinetics-400_train.csv] --out DIR
//   tinyvid lists kinetics --csv F --label-map label_map_k400.txt --out LIST [--level 1|2]
//   tinyvid lists sthv1 --split F --labels something-something-v1-labels.csv --frames-dir D --out LIST [--rgb-prefix P]
//   tinyvid lists sthv2 --split F.json --labels something-something-v2-labels.json --out LIST [--suffix .webm]
// Each kind is a subcommand of `lists`, with its own options and help.
#include <filesystem>
#include <memory>

#include <tinyvid/data/annotations.hpp>
#include <tinyvid/data/kinetics200.hpp>

#include "common.hpp"

namespace tvcli {

inline void write_list_file(const std::string& path, const std::string& text) {
  tv::io::detail::write_file_atomically(path, "tinyvid lists", [&](auto&& put) { put(text.data(), text.size()); });
}

// The official id lists + Kinetics-400 CSVs -> k200_{train,val}_list_videos.txt and classes.txt (the 200 classes in
// sorted order; training labels numbered by the validation split's classes).
inline Run add_lists_kinetics200(CLI::App& cmd) {
  struct Args {
    Text ids_dir, val_csv, train_csv, out;
  };
  auto a = std::make_shared<Args>();
  add_text(cmd, a->ids_dir, "--ids-dir", "D", "the folder of the official train/val_ytid_list.txt");
  add_text(cmd, a->val_csv, "--val-csv", "F", "kinetics-400_val.csv");
  add_text(cmd, a->train_csv, "--train-csv", "F", "kinetics-400_train.csv (else only the validation list)");
  add_text(cmd, a->out, "--out", "DIR", "where the lists and classes.txt go");
  return [a] {
    const std::string ids = a->ids_dir.need(), out = a->out.need();
    std::filesystem::create_directories(out);
    const auto val = tv::data::kinetics200_split(ids + "/val_ytid_list.txt", a->val_csv.need());
    write_list_file(out + "/k200_val_list_videos.txt", tv::data::format_video_list(val.entries));
    std::string classes;
    for (const auto& c : val.classes) classes += c + "\n";
    write_list_file(out + "/classes.txt", classes);
    std::printf("kinetics200: %zu classes; val: %zu videos (%zu listed ids not in the CSV)\n", val.classes.size(),
                val.entries.size(), val.missing.size());
    if (a->train_csv.given()) {
      const auto train = tv::data::kinetics200_split(ids + "/train_ytid_list.txt", a->train_csv.get(), val.classes);
      write_list_file(out + "/k200_train_list_videos.txt", tv::data::format_video_list(train.entries));
      std::printf("kinetics200: train: %zu videos (%zu listed ids not in the CSV)\n", train.entries.size(),
                  train.missing.size());
    }
    std::printf("wrote %s/k200_val_list_videos.txt%s and classes.txt\n", out.c_str(),
                a->train_csv.given() ? ", k200_train_list_videos.txt" : "");
    return 0;
  };
}

inline Run add_lists_kinetics(CLI::App& cmd) {
  struct Args {
    Text csv, label_map, out, level;
  };
  auto a = std::make_shared<Args>();
  add_text(cmd, a->csv, "--csv", "F", "a Kinetics CSV (label,youtube_id,time_start,time_end,split)");
  add_text(cmd, a->label_map, "--label-map", "F", "the class names, one a line (label_map_k400.txt)");
  add_text(cmd, a->out, "--out", "LIST", "the video list to write");
  add_text(cmd, a->level, "--level", "1|2", "2: <class>/<video> paths, 1: <video>", "2");
  return [a] {
    const int level = static_cast<int>(a->level.integer());
    const auto list = tv::data::read_kinetics_csv(a->csv.need(), tv::data::read_label_map(a->label_map.need()), level);
    write_list_file(a->out.need(), tv::data::format_video_list(list));
    std::printf("kinetics: %zu videos -> %s\n", list.size(), a->out.need().c_str());
    return 0;
  };
}

inline Run add_lists_sthv1(CLI::App& cmd) {
  struct Args {
    Text split, labels, frames_dir, out, rgb_prefix;
  };
  auto a = std::make_shared<Args>();
  add_text(cmd, a->split, "--split", "F", "the split file (id;label lines)");
  add_text(cmd, a->labels, "--labels", "F", "something-something-v1-labels.csv");
  add_text(cmd, a->frames_dir, "--frames-dir", "D", "the frame folders, one per id");
  add_text(cmd, a->out, "--out", "LIST", "the rawframe list to write");
  add_text(cmd, a->rgb_prefix, "--rgb-prefix", "P", "frames are the files starting with P (default: all)");
  return [a] {
    // Frame folders are counted as MMAction2's build_file_list does (--rgb-prefix, '' for sthv1): the files in
    // <frames-dir>/<id> whose names start with the prefix; hidden files (a tool's marker) are not frames.
    const std::string text = tv::data::detail::read_text_file(a->split.need());
    auto list = tv::data::parse_sthv1_split(text, a->split.need(), tv::data::read_label_map(a->labels.need()));
    const std::string frames = a->frames_dir.need(), prefix = a->rgb_prefix.get();
    for (auto& e : list) {
      const std::filesystem::path dir = std::filesystem::path(frames) / e.path;
      TV_CHECK(std::filesystem::is_directory(dir), "no frame folder '", dir.string(), "'");
      e.total_frames = 0;
      for (const auto& f : std::filesystem::directory_iterator(dir)) {
        const std::string name = f.path().filename().string();
        e.total_frames += f.is_regular_file() && name.front() != '.' && name.rfind(prefix, 0) == 0;
      }
    }
    write_list_file(a->out.need(), tv::data::format_rawframe_list(list));
    std::printf("sthv1: %zu frame folders -> %s\n", list.size(), a->out.need().c_str());
    return 0;
  };
}

inline Run add_lists_sthv2(CLI::App& cmd) {
  struct Args {
    Text split, labels, out, suffix;
  };
  auto a = std::make_shared<Args>();
  add_text(cmd, a->split, "--split", "F.json", "the split (something-something-v2-train.json, ...)");
  add_text(cmd, a->labels, "--labels", "F.json", "something-something-v2-labels.json");
  add_text(cmd, a->out, "--out", "LIST", "the video list to write");
  add_text(cmd, a->suffix, "--suffix", "EXT", "the videos' file extension", ".webm");
  return [a] {
    const std::string labels = a->labels.need(), split = a->split.need();
    const auto names = tv::data::parse_sthv2_labels(tv::data::detail::read_text_file(labels), labels);
    const auto list =
        tv::data::parse_sthv2_split(tv::data::detail::read_text_file(split), split, names, a->suffix.get());
    write_list_file(a->out.need(), tv::data::format_video_list(list));
    std::printf("sthv2: %zu videos -> %s\n", list.size(), a->out.need().c_str());
    return 0;
  };
}

inline Run add_lists(CLI::App& cmd) {
  struct Kind {
    const char* name;
    const char* description;
    Run (*add)(CLI::App&);
  };
  static const Kind kinds[] = {
      {"kinetics200", "Kinetics-200's lists and classes from the official id lists and the Kinetics-400 CSVs",
       add_lists_kinetics200},
      {"kinetics", "a Kinetics video list from a CSV and a label map", add_lists_kinetics},
      {"sthv1", "a Something-Something V1 rawframe list (frames counted per folder)", add_lists_sthv1},
      {"sthv2", "a Something-Something V2 video list", add_lists_sthv2},
  };
  // Its own formatter: the subcommands here are dataset kinds.
  auto fmt = std::make_shared<CLI::Formatter>();
  fmt->column_width(34);
  fmt->label("SUBCOMMAND", "KIND");
  cmd.formatter(fmt);
  cmd.require_subcommand(0, 1);
  auto runs = std::make_shared<std::vector<std::pair<CLI::App*, Run>>>();
  for (const Kind& k : kinds) {
    CLI::App* sub = cmd.add_subcommand(k.name, k.description)->group("Dataset kinds");
    runs->emplace_back(sub, k.add(*sub));
  }
  cmd.allow_extras();  // an unknown kind is reported below, with the kinds; after the kinds, which would inherit it
  return [&cmd, runs] {
    const auto extra = cmd.remaining();  // the words between `lists` and a kind, or an unknown kind
    if (!extra.empty()) {
      TV_CHECK(!looks_like_option(extra.front()), "unknown option ", extra.front(),
               " before the dataset kind; a kind's options follow it (see tinyvid lists --help)");
      TV_FAIL("unknown dataset kind '", extra.front(), "'; expected kinetics200, kinetics, sthv1 or sthv2");
    }
    for (const auto& [sub, run] : *runs)
      if (sub->parsed()) return run();
    TV_FAIL("expected a dataset kind (kinetics200, kinetics, sthv1, sthv2) after the command (see tinyvid lists "
            "--help)");
  };
}

}  // namespace tvcli
