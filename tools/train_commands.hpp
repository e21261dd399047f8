// Part of tools/tinyvid.cpp (included inside its anonymous namespace, after Args and parse): the commands
// that train, test and apply models, on the library's train/ floor.
//   tinyvid train CONFIG [--work-dir D] [--resume [STATE]] [--force] [--allow-change KEYS] [--set key=value ...]
//   tinyvid test CONFIG CHECKPOINT [--views CLIPSxCROPS] [--out DIR] [--dump FILE] [--set key=value ...] [--json]
//   tinyvid infer (--config C | --model NAME [--num-classes K] [--frames T] [--size S]) --weights W --video FILE
//                 [--labels L] [--set key=value ...] [--json]

// The config file plus --set overrides.
tv::train::Config load_config(const std::string& path, const Args& a) {
  tv::train::Config c = tv::train::Config::from_file(path);
  for (const auto& [k, v] : a.set) c.set(k, v, "--set " + k + "=" + v);
  return c;
}

// work_dirs/<config name without extension>, as MMAction2's tools/train.py.
std::string default_work_dir(const std::string& config_path) {
  return (std::filesystem::path("work_dirs") / std::filesystem::path(config_path).stem()).string();
}

int train_command(int argc, char** argv) {
  const std::string config_path = positional(argc, argv, "a CONFIG file");
  // `--resume` alone continues the work directory's run; `--resume PATH` continues from that state file
  // (MMAction2's --resume [PATH]).
  std::vector<char*> args(argv, argv + argc);
  std::string resume_from;
  for (size_t i = 3; i < args.size(); ++i)
    if (std::string(args[i]) == "--resume" && i + 1 < args.size() && std::string(args[i + 1]).rfind("--", 0) != 0) {
      resume_from = args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    }
  const Args a = parse(static_cast<int>(args.size()), args.data(),
                       {.values = {"work-dir", "stop-after-iters", "set", "allow-change"},
                        .flags = {"resume", "force", "no-progress", "quiet"}},
                       3);
  const tv::train::Config c = load_config(config_path, a);
  tv::train::TrainOptions o;
  o.resume = a.flag("resume");
  o.resume_from = resume_from;
  TV_CHECK(!(o.resume && a.flag("force")), "--resume continues a run and --force starts a new one: give one of them");
  // The work directory: --work-dir, else the resumed state's folder, else work_dirs/<config name>.
  o.work_dir = a.get("work-dir", resume_from.empty() ? default_work_dir(config_path)
                                                     : std::filesystem::path(resume_from).parent_path().string());
  if (a.flag("force") && std::filesystem::exists(o.work_dir) && !std::filesystem::is_empty(o.work_dir)) {
    const std::string fresh = tv::train::timestamped_work_dir(o.work_dir);
    std::printf("tinyvid train: %s holds files; --force starts the new run in %s\n", o.work_dir.c_str(), fresh.c_str());
    o.work_dir = fresh;
  }
  std::stringstream allowed(a.get("allow-change", ""));
  for (std::string k; std::getline(allowed, k, ',');)
    if (!k.empty()) o.allow_changed.push_back(k);
  o.progress = !a.flag("no-progress") && tv::stderr_is_terminal();
  o.quiet = a.flag("quiet");
  o.build_info = std::string("git ") + tinyvid_git_hash;
  if (a.has("stop-after-iters")) o.stop_after_iters = to_int("stop-after-iters", a.get("stop-after-iters"));
  std::printf("tinyvid train: %s -> %s%s\n", config_path.c_str(), o.work_dir.c_str(), o.resume ? " (resume)" : "");
  tv::train::StopOnSignals stop_on_signals;  // Ctrl-C / SIGTERM: save at the next safe point, then exit
  const auto r = tv::train::train(c, o);
  if (r.interrupted) return 130;  // as a shell reports a process ended by SIGINT
  std::printf("done: %lld epochs, %lld iterations, %.1f s in training iterations", static_cast<long long>(r.epochs_done),
              static_cast<long long>(r.global_iter), r.seconds);
  if (r.best_top1 >= 0)
    std::printf("; best val top-1 %.4f (epoch %lld)", r.best_top1, static_cast<long long>(r.best_epoch));
  if (r.last_val_top1 >= 0) std::printf(", last %.4f", r.last_val_top1);
  std::printf("\n");
  return 0;
}

// tinyvid test CONFIG CHECKPOINT (MMAction2's test.py order; --checkpoint C works too).
int test_command(int argc, char** argv) {
  const std::string config_path = positional(argc, argv, "a CONFIG file");
  std::string checkpoint;
  int first_option = 3;
  if (argc > 3 && std::string(argv[3]).rfind("--", 0) != 0) checkpoint = argv[3], first_option = 4;
  const Args a = parse(argc, argv, {.values = {"checkpoint", "views", "out", "set", "dump"}, .flags = {"json", "no-progress"}},
                       first_option);
  TV_CHECK(checkpoint.empty() || !a.has("checkpoint"), "give the checkpoint once: positionally or with --checkpoint");
  TV_CHECK(!checkpoint.empty() || a.has("checkpoint"),
           "expected a CHECKPOINT after the config: tinyvid test CONFIG CHECKPOINT (or --checkpoint C)");
  if (checkpoint.empty()) checkpoint = a.get("checkpoint");
  tv::train::Config c = load_config(config_path, a);
  std::string views;
  if (a.has("views")) {
    // CLIPSxCROPS: test.num_clips (in the sampler's clips, as MMAction2's num_clips) and the crops.
    views = a.get("views");
    const size_t x = views.find('x');
    TV_CHECK(x != std::string::npos, "--views: expected CLIPSxCROPS such as 10x3, got '", views, "'");
    const int64_t clips = to_int("views", views.substr(0, x)), crops = to_int("views", views.substr(x + 1));
    TV_CHECK(crops == 1 || crops == 3 || crops == 10, "--views: crops must be 1 (centre), 3 or 10, got ", crops);
    c.set("test.num_clips", std::to_string(clips), "--views " + views);
    c.set("test.crop", crops == 1 ? "center" : crops == 3 ? "three" : "ten", "--views " + views);
    if (crops == 3 && !c.has("test.crop_size")) {
      // ThreeCrop spans the short side: crops of the resized short side, as MMAction2's ThreeCrop(256).
      const int64_t side = c.integer("test.resize", c.integer("train.resize", 256));
      if (side > 0) c.set("test.crop_size", std::to_string(side), "--views " + views);
    }
  }
  const tv::train::Recipe r = tv::train::make_recipe(c);
  c.check_all_used();
  if (views.empty()) {
    const std::string crop = c.str("test.crop", "center");
    views = std::to_string(r.test_pipeline.sampler.num_clips) + "x" + (crop == "center" ? "1" : crop == "three" ? "3" : "10");
  }
  auto model = tv::models::make_model<float>(r.model, r.model_config);
  tv::io::load_weights(*model, checkpoint);
  if (r.threads > 0) tv::set_num_threads(r.threads);
  auto ds = tv::train::make_dataset(r, "test");
  // Each checkpoint and view setting gets its own folder, so tests of one run never overwrite each other.
  const std::filesystem::path ck(checkpoint);
  std::string stem = ck.filename().string();
  stem = stem.substr(0, stem.find('.'));
  const std::string out = a.get("out", (ck.parent_path() / "test" / (stem + "_" + views)).string());
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  TV_CHECK(!ec, "cannot create '", out, "': ", ec.message());
  const auto res = tv::train::evaluate(*model, *ds, {.average = r.average_clips, .batch_size = r.test_batch_size,
                                                     .num_workers = r.num_workers, .max_views_per_pass = r.max_views_per_pass,
                                                     .progress = !a.flag("no-progress")});
  // Metrics over a fraction of the list would look like a result: too many unreadable videos is an error.
  const double share = ds->size() ? static_cast<double>(res.skipped.size()) / static_cast<double>(ds->size()) : 0.0;
  if (res.scores.empty() || share > r.max_skip_ratio) {
    std::string bad;
    for (size_t i = 0; i < res.skipped.size() && i < 10; ++i)
      bad += "\n  " + res.skipped[i].path + ": " + res.skipped[i].reason;
    TV_FAIL("test: ", res.skipped.size(), " of the ", ds->size(), " videos of ", r.test_list,
            " could not be read, more than data.max_skip_ratio = ", r.max_skip_ratio,
            " allows; no metrics written (tinyvid check-videos lists them all):", bad);
  }
  tv::train::write_test_report(out, res, tv::train::class_names(r),
                               {{"config", config_path}, {"checkpoint", checkpoint}, {"model", r.model}, {"clips_x_crops", views}});
  if (a.has("dump")) tv::train::write_scores_dump(a.get("dump"), res, *ds);
  if (a.flag("json")) {
    std::string text = tv::data::detail::read_text_file(out + "/results.json");
    std::fputs(text.c_str(), stdout);
  } else {
    std::printf("%s on %s: %zu videos x %lld views, top-1 %.4f, top-5 %.4f, mean class accuracy %.4f (%.1f s)\n",
                r.model.c_str(), r.test_list.c_str(), res.scores.size(), static_cast<long long>(res.views), res.top1,
                res.top5, res.mean_class_accuracy, res.seconds);
    for (const auto& s : res.skipped) std::printf("skipped (unreadable): %s: %s\n", s.path.c_str(), s.reason.c_str());
    std::printf("wrote %s/results.json, per_class.csv, confusion.png%s%s\n", out.c_str(), a.has("dump") ? ", " : "",
                a.get("dump").c_str());
  }
  return 0;
}

int infer_command(int argc, char** argv) {
  const Args a = parse(argc, argv,
                       {.values = {"config", "model", "num-classes", "frames", "size", "weights", "video", "labels", "set"},
                        .flags = {"json"}});
  tv::train::Recipe r;
  if (a.has("config")) {
    tv::train::Config c = load_config(a.get("config"), a);
    r = tv::train::make_recipe(c);
    c.check_all_used();
  } else {
    // No config: TSN-style uniform frames, short side resized to size * 256 / 224, a centre crop of size.
    r.model = a.need("model");
    r.model_config = model_config(a);
    const int64_t size = to_int("size", a.get("size", "224"));
    r.test_pipeline.sampler = {.clip_len = 1, .num_clips = r.model_config.frames, .test_mode = true};
    r.test_pipeline.steps.push_back(tv::data::clip_step(tv::data::Resize{.scale = {-1, (size * 256 + 112) / 224}}));
    r.test_pipeline.steps.push_back(tv::data::clip_step(tv::data::CenterCrop{.crop_size = {size, size}}));
  }
  auto model = tv::models::make_model<float>(r.model, r.model_config);
  tv::io::load_weights(*model, a.need("weights"));
  const std::string video = a.need("video");
  std::vector<std::string> names;
  if (a.has("labels")) names = tv::data::read_label_map(a.get("labels"));
  else if (!r.classes_file.empty()) names = tv::train::class_names(r);
  tv::data::VideoDataset ds({tv::data::Annotation{.path = video, .labels = {0}}}, r.test_pipeline);
  tv::Generator gen;
  const auto sample = ds.get(0, gen);
  // Decoded frames are finite; a config's Normalize (a std of 0) may not leave them so: name the video.
  tv::check_finite(sample->clips, video + ": the clips after the test pipeline");
  tv::NoGradGuard no_grad;
  model->eval();
  const int64_t views = sample->clips.size(0) / model->frames();
  const auto scores = model->forward_views(sample->clips, views, tv::models::AverageClips::Prob).to_vector();
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min<size_t>(5, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](int64_t x, int64_t y) { return scores[static_cast<size_t>(x)] > scores[static_cast<size_t>(y)]; });
  auto name_of = [&](int64_t c) { return c < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(c)] : std::to_string(c); };
  if (a.flag("json")) {
    std::printf("{\"video\":%s,\"views\":%lld,\"top5\":[", json_string(video).c_str(), static_cast<long long>(views));
    for (size_t i = 0; i < k; ++i)
      std::printf("%s{\"class\":%lld,\"name\":%s,\"prob\":%.6f}", i ? "," : "", static_cast<long long>(order[i]),
                  json_string(name_of(order[i])).c_str(), scores[static_cast<size_t>(order[i])]);
    std::printf("]}\n");
  } else {
    std::printf("%s (%lld views):\n", video.c_str(), static_cast<long long>(views));
    for (size_t i = 0; i < k; ++i)
      std::printf("  %6.2f%%  %s (class %lld)\n", 100.0 * scores[static_cast<size_t>(order[i])], name_of(order[i]).c_str(),
                  static_cast<long long>(order[i]));
  }
  return 0;
}
