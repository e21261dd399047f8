// Part of tools/tinyvid.cpp (included inside its anonymous namespace, after Args and parse): `tinyvid lists`,
// the annotation files MMAction2's tools/data scripts make, from the datasets' own files.
//   tinyvid lists kinetics200 --ids-dir D --val-csv kinetics-400_val.csv [--train-csv kinetics-400_train.csv] --out DIR
//   tinyvid lists kinetics --csv F --label-map label_map_k400.txt --out LIST [--level 1|2]
//   tinyvid lists sthv1 --split F --labels something-something-v1-labels.csv --frames-dir D --out LIST [--rgb-prefix P]
//   tinyvid lists sthv2 --split F.json --labels something-something-v2-labels.json --out LIST [--suffix .webm]

void write_list_file(const std::string& path, const std::string& text) {
  tv::io::detail::write_file_atomically(path, "tinyvid lists", [&](auto&& put) { put(text.data(), text.size()); });
}

int lists_command(int argc, char** argv) {
  const std::string kind = positional(argc, argv, "a dataset kind (kinetics200, kinetics, sthv1, sthv2)");
  // Each kind takes its own options; an unknown kind is reported below, with the kinds.
  const std::map<std::string, std::vector<std::string>> options = {
      {"kinetics200", {"ids-dir", "val-csv", "train-csv", "out"}},
      {"kinetics", {"csv", "label-map", "out", "level"}},
      {"sthv1", {"split", "labels", "frames-dir", "out", "rgb-prefix"}},
      {"sthv2", {"split", "labels", "out", "suffix"}}};
  const auto known = options.find(kind);
  TV_CHECK(known != options.end(), "lists: unknown dataset kind '", kind, "'; expected kinetics200, kinetics, sthv1 or sthv2");
  const Args a = parse(argc, argv, {.values = known->second}, 3);
  if (kind == "kinetics200") {
    // The official id lists + Kinetics-400 CSVs -> k200_{train,val}_list_videos.txt and classes.txt (the 200
    // classes in sorted order; training labels numbered by the validation split's classes).
    const std::string ids = a.need("ids-dir"), out = a.need("out");
    std::filesystem::create_directories(out);
    const auto val = tv::data::kinetics200_split(ids + "/val_ytid_list.txt", a.need("val-csv"));
    write_list_file(out + "/k200_val_list_videos.txt", tv::data::format_video_list(val.entries));
    std::string classes;
    for (const auto& c : val.classes) classes += c + "\n";
    write_list_file(out + "/classes.txt", classes);
    std::printf("kinetics200: %zu classes; val: %zu videos (%zu listed ids not in the CSV)\n", val.classes.size(),
                val.entries.size(), val.missing.size());
    if (a.has("train-csv")) {
      const auto train = tv::data::kinetics200_split(ids + "/train_ytid_list.txt", a.get("train-csv"), val.classes);
      write_list_file(out + "/k200_train_list_videos.txt", tv::data::format_video_list(train.entries));
      std::printf("kinetics200: train: %zu videos (%zu listed ids not in the CSV)\n", train.entries.size(),
                  train.missing.size());
    }
    std::printf("wrote %s/k200_val_list_videos.txt%s and classes.txt\n", out.c_str(),
                a.has("train-csv") ? ", k200_train_list_videos.txt" : "");
    return 0;
  }
  if (kind == "kinetics") {
    const int level = static_cast<int>(to_int("level", a.get("level", "2")));
    const auto list = tv::data::read_kinetics_csv(a.need("csv"), tv::data::read_label_map(a.need("label-map")), level);
    write_list_file(a.need("out"), tv::data::format_video_list(list));
    std::printf("kinetics: %zu videos -> %s\n", list.size(), a.need("out").c_str());
    return 0;
  }
  if (kind == "sthv1") {
    // Frame folders are counted as MMAction2's build_file_list does (--rgb-prefix, '' for sthv1): the files in
    // <frames-dir>/<id> whose names start with the prefix; hidden files (a tool's marker) are not frames.
    const std::string text = tv::data::detail::read_text_file(a.need("split"));
    auto list = tv::data::parse_sthv1_split(text, a.need("split"), tv::data::read_label_map(a.need("labels")));
    const std::string frames = a.need("frames-dir"), prefix = a.get("rgb-prefix");
    for (auto& e : list) {
      const std::filesystem::path dir = std::filesystem::path(frames) / e.path;
      TV_CHECK(std::filesystem::is_directory(dir), "sthv1: no frame folder '", dir.string(), "'");
      e.total_frames = 0;
      for (const auto& f : std::filesystem::directory_iterator(dir)) {
        const std::string name = f.path().filename().string();
        e.total_frames += f.is_regular_file() && name.front() != '.' && name.rfind(prefix, 0) == 0;
      }
    }
    write_list_file(a.need("out"), tv::data::format_rawframe_list(list));
    std::printf("sthv1: %zu frame folders -> %s\n", list.size(), a.need("out").c_str());
    return 0;
  }
  if (kind == "sthv2") {
    const std::string labels = a.need("labels"), split = a.need("split");
    const auto names = tv::data::parse_sthv2_labels(tv::data::detail::read_text_file(labels), labels);
    const auto list = tv::data::parse_sthv2_split(tv::data::detail::read_text_file(split), split, names,
                                                  a.get("suffix", ".webm"));
    write_list_file(a.need("out"), tv::data::format_video_list(list));
    std::printf("sthv2: %zu videos -> %s\n", list.size(), a.need("out").c_str());
    return 0;
  }
  return 2;  // not reached: the kind was checked above
}
