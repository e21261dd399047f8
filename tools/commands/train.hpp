#pragma once
// tinyvid train CONFIG [--work-dir D] [--resume [STATE]] [--force] [--allow-change KEY,...] [--set key=value ...]
//               [--stop-after-iters N] [--no-progress] [--quiet]
#include <filesystem>
#include <memory>
#include <sstream>

#include <tinyvid/train/trainer.hpp>

#include "common.hpp"

namespace tvcli {

// The config file plus --set overrides.
inline tv::train::Config load_config(const std::string& path, const std::map<std::string, std::string>& set) {
  tv::train::Config c = tv::train::Config::from_file(path);
  for (const auto& [k, v] : set) c.set(k, v, "--set " + k + "=" + v);
  return c;
}

// work_dirs/<config name without extension>, as MMAction2's tools/train.py.
inline std::string default_work_dir(const std::string& config_path) {
  return (std::filesystem::path("work_dirs") / std::filesystem::path(config_path).stem()).string();
}

inline Run add_train(CLI::App& cmd) {
  struct Args {
    Text config, work_dir, resume, allow_change, stop_after_iters;
    std::map<std::string, std::string> set;
    bool force = false, no_progress = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  add_positional(cmd, a->config, "CONFIG", "the config (configs/README.md lists the keys)");
  add_text(cmd, a->work_dir, "--work-dir", "D", "where the run goes (default: work_dirs/<config name>)");
  // `--resume` alone continues the work directory's run; `--resume STATE` that state file's (MMAction2's
  // --resume [PATH]).
  add_text(cmd, a->resume, "--resume", "[STATE]", "continue the run in D, or the one of the state file STATE")
      .option->expected(0, 1);
  add_flag(cmd, a->force, "--force", "a D with files: start the new run in D_<timestamp>");
  add_text(cmd, a->allow_change, "--allow-change", "KEY,...", "keys a resumed run may change (or all)");
  add_sets(cmd, a->set, "override a config key; repeatable");
  add_text(cmd, a->stop_after_iters, "--stop-after-iters", "N", "stop (saving the state) after N iterations");
  add_flag(cmd, a->no_progress, "--no-progress", "no progress line");
  add_flag(cmd, a->quiet, "--quiet", "only the epochs' lines");
  cmd.footer(wrap("Trains the config's model into D: log.json (MMAction2's fields), train.log, epoch_N / latest / "
                  "best weights, the training state, curves.png. A D with files is refused unless --resume "
                  "continues its run (or STATE's) or --force starts a new run in D_<timestamp>; a resume with other "
                  "settings needs --allow-change KEY (or all). Ctrl-C or SIGTERM saves at the next safe point; "
                  "--resume continues exactly.") +
             "\n" + config_set_help());
  return [a] {
    const std::string config_path = a->config.need_positional("a CONFIG file");
    const tv::train::Config c = load_config(config_path, a->set);
    tv::train::TrainOptions o;
    o.resume = a->resume.given();
    o.resume_from = a->resume.get();
    TV_CHECK(!(o.resume && a->force), "--resume continues a run and --force starts a new one: give one of them");
    // The work directory: --work-dir, else the resumed state's folder, else work_dirs/<config name>.
    o.work_dir = a->work_dir.get(o.resume_from.empty() ? default_work_dir(config_path)
                                                       : std::filesystem::path(o.resume_from).parent_path().string());
    // Under mpirun rank 0 speaks and decides the new folder of --force for all.
    tv::dist::ProcessGroup& pg = tv::dist::world();
    const bool lead = pg.rank() == 0;
    if (a->force && lead && std::filesystem::exists(o.work_dir) && !std::filesystem::is_empty(o.work_dir)) {
      const std::string fresh = tv::train::timestamped_work_dir(o.work_dir);
      std::printf("tinyvid train: %s holds files; --force starts the new run in %s\n", o.work_dir.c_str(),
                  fresh.c_str());
      o.work_dir = fresh;
    }
    if (pg.size() > 1) o.work_dir = pg.all_gather_bytes(o.work_dir).front();
    std::stringstream allowed(a->allow_change.get());
    for (std::string k; std::getline(allowed, k, ',');)
      if (!k.empty()) o.allow_changed.push_back(k);
    o.progress = !a->no_progress && tv::stderr_is_terminal();
    o.quiet = a->quiet;
    o.build_info = std::string("git ") + tinyvid_git_hash;
    if (a->stop_after_iters.given()) o.stop_after_iters = a->stop_after_iters.integer();
    if (lead)
      std::printf("tinyvid train: %s -> %s%s%s\n", config_path.c_str(), o.work_dir.c_str(), o.resume ? " (resume)" : "",
                  pg.size() > 1 ? (" on " + std::to_string(pg.size()) + " processes").c_str() : "");
    tv::train::StopOnSignals stop_on_signals;  // Ctrl-C / SIGTERM: save at the next safe point, then exit
    const auto r = tv::train::train(c, o);
    if (r.interrupted) return 130;  // as a shell reports a process ended by SIGINT
    if (!lead) return 0;
    std::printf("done: %lld epochs, %lld iterations, %.1f s in training iterations",
                static_cast<long long>(r.epochs_done), static_cast<long long>(r.global_iter), r.seconds);
    if (pg.size() > 1) std::printf(" (%.1f s of them waiting for the gradients' sums)", r.comm_seconds);
    if (r.best_top1 >= 0)
      std::printf("; best val top-1 %.4f (epoch %lld)", r.best_top1, static_cast<long long>(r.best_epoch));
    if (r.last_val_top1 >= 0) std::printf(", last %.4f", r.last_val_top1);
    std::printf("\n");
    return 0;
  };
}

}  // namespace tvcli
