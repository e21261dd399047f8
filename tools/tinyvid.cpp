// The tinyvid command line: one program, subcommands, on CLI11. Each command is a file of tools/commands/ (its
// options, help and work); kCommands below is the one list of them. `tinyvid help` or `tinyvid --help` lists the
// commands, `tinyvid COMMAND --help` prints one's options. Options are --name value or --name=value. Errors are
// one line on stderr, "tinyvid COMMAND: ...", and exit code 2.
#include <cstdio>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <tinyvid/dist/process_group.hpp>

#include "commands/common.hpp"
#include "commands/forward.hpp"
#include "commands/summary.hpp"

#ifdef TINYVID_WITH_VIDEO
#include "commands/chart.hpp"
#include "commands/check_videos.hpp"
#include "commands/extract_frames.hpp"
#include "commands/frames.hpp"
#include "commands/cam.hpp"
#include "commands/infer.hpp"
#include "commands/lists.hpp"
#include "commands/probe.hpp"
#include "commands/synth.hpp"
#include "commands/test.hpp"
#include "commands/train.hpp"
#endif

namespace {

// tinyvid help [COMMAND]: the list of commands, or one command's help.
tvcli::Run add_help(CLI::App& cmd) {
  auto topic = std::make_shared<std::string>();
  cmd.add_option("COMMAND", *topic, "a command")->type_name("");
  return [&cmd, topic] {
    const CLI::App& app = *cmd.get_parent();
    const auto named = app.get_subcommands([&](const CLI::App* c) { return c->get_name() == *topic; });
    TV_CHECK(topic->empty() || !named.empty(), "unknown command '", *topic, "' (tinyvid help lists the commands)");
    // app.help() would delegate to the command parsed, this one
    const std::string text = topic->empty()
                                 ? app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal)
                                 : named.front()->help(app.get_name());
    std::fputs(text.c_str(), stdout);
    return 0;
  };
}

struct Command {
  const char* name;
  const char* description;           // one line, for `tinyvid help`
  tvcli::Run (*add)(CLI::App& cmd);  // adds the command's options, help and subcommands to its CLI::App; returns its work
};

const Command kCommands[] = {
    {"summary", "per-layer output shapes, parameters and multiply-adds of a model for one clip", tvcli::add_summary},
    {"forward", "runs a model on a tensor of a .safetensors file, writes the class scores", tvcli::add_forward},
#ifdef TINYVID_WITH_VIDEO  // the commands that read or write videos need FFmpeg
    {"train", "trains a config's model into a work directory", tvcli::add_train},
    {"test", "multi-view test of a checkpoint: top-1, top-5, mean class accuracy", tvcli::add_test},
    {"infer", "the top-5 classes of one video", tvcli::add_infer},
    {"cam", "Grad-CAM++ maps of one clip of a video, as a PNG strip and an MP4", tvcli::add_cam},
    {"synth", "writes the synthetic action dataset (videos and lists)", tvcli::add_synth},
    {"probe", "container, codec, size, fps, decodable frames and duration of a video", tvcli::add_probe},
    {"check-videos", "decodes every video of a list and checks its labels", tvcli::add_check_videos},
    {"lists", "MMAction2's annotation lists from the datasets' own files", tvcli::add_lists},
    {"frames", "writes chosen frames of a video as PNG", tvcli::add_frames},
    {"extract-frames", "every frame of every video of a list as JPEG (MMAction2 rawframes)", tvcli::add_extract_frames},
    // PNG through libpng, which comes with the video target
    {"chart", "a grouped bar chart with error bars (PNG) from a CSV of results", tvcli::add_chart},
#endif
    {"help", "lists the commands; help COMMAND prints that command's options", add_help},
};

// The innermost command parsed ("lists", then "sthv1" in `tinyvid lists sthv1`); the app itself if none.
const CLI::App* parsed_command(const CLI::App& app) {
  const CLI::App* cmd = &app;
  while (!cmd->get_subcommands().empty()) cmd = cmd->get_subcommands().front();
  return cmd;
}

// What is left over after parsing, as one line: an unknown command, option or a stray word.
std::string leftover_message(const CLI::App& app) {
  const CLI::App* cmd = parsed_command(app);
  const std::vector<std::string> extra = cmd->remaining();
  const std::string word = extra.empty() ? "" : extra.front();
  if (cmd != &app) return tvcli::leftover_message(*cmd, word);
  std::string names;
  for (const Command& c : kCommands) names += std::string(names.empty() ? "" : ", ") + c.name;
  return (tvcli::looks_like_option(word) ? "unknown option " + word : "unknown command '" + word + "'") +
         "; the commands: " + names + " (tinyvid help)";
}

// tv::Error messages start "tinyvid: "; the command's prefix replaces it.
std::string without_prefix(std::string message) {
  const std::string prefix = "tinyvid: ";
  if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
  return message;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("tinyvid: video action recognition (TSN, TSM, DNR) from the command line", "tinyvid");
  auto fmt = std::make_shared<CLI::Formatter>();
  fmt->column_width(34);
  fmt->label("SUBCOMMAND", "COMMAND");
  app.formatter(fmt);
  app.require_subcommand(0, 1);  // one command; later words are never taken for another command
  std::vector<std::pair<CLI::App*, tvcli::Run>> runs;
  for (const Command& c : kCommands) {
    CLI::App* cmd = app.add_subcommand(c.name, c.description)->group("Commands");
    runs.emplace_back(cmd, c.add(*cmd));
  }
  app.footer("tinyvid COMMAND --help prints a command's options. Options: --name value or --name=value.");
#ifdef TINYVID_WITH_VIDEO
  // FFmpeg's info lines (x264's banner per file) and warnings about damaged files would bury our output; what
  // matters comes back as a tv::Error.
  av_log_set_level(AV_LOG_ERROR);
#endif
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);  // the help of the command it was given to, on stdout; exit code 0
    } catch (const CLI::ExtrasError&) {
      TV_FAIL(leftover_message(app));
    } catch (const CLI::ParseError& e) {
      TV_FAIL(e.what());
    }
    tv::cpu::active_isa();  // reads TINYVID_ISA now: a bad value is reported before any work
    for (const auto& [cmd, run] : runs)
      if (cmd->parsed()) return run();
    std::fputs(app.help().c_str(), stdout);  // `tinyvid` alone
    return 0;
  } catch (const std::bad_alloc&) {
    // tinyvid's own allocations say what they wanted (tv::Error); this is a standard container's.
    std::fprintf(stderr, "%s: out of memory (a standard-library allocation failed); use a smaller batch, clip or "
                 "model, or give the process more memory\n", tvcli::command_path(*parsed_command(app)).c_str());
    return 2;
  } catch (const std::exception& e) {
    const std::string message = tvcli::command_path(*parsed_command(app)) + ": " + without_prefix(e.what());
    // One of several processes (mpirun): the others would wait for it until their timeout; end them all now,
    // with this message. The files written so far are whole (every write is atomic).
    if (tv::dist::detail::launched() && tv::dist::world().size() > 1) tv::dist::world().abort(message);
    std::fprintf(stderr, "%s\n", message.c_str());
    return 2;
  }
}
