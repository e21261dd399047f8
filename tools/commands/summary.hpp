#pragma once
// tinyvid summary --model NAME [--num-classes K] [--frames T] [--size S] [--set key=value ...] [--json]
#include <memory>

#include "common.hpp"

namespace tvcli {

inline Run add_summary(CLI::App& cmd) {
  struct Args {
    ModelArgs m;
    Text size;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  a->m.add(cmd);
  add_text(cmd, a->size, "--size", "S", "input side in pixels", "224");
  a->m.add_sets(cmd);
  add_flag(cmd, a->json, "--json", "one JSON object instead of the table");
  cmd.footer(model_help());
  return [a] {
    const std::string name = a->m.model.need();
    const int64_t size = a->size.integer();
    const tv::train::DeviceChoice device = a->m.device();
    auto model = tv::models::make_model<float>(name, a->m.config());
    model->to(device.device);  // the counts read shapes only; on a GPU this checks that the weights fit
    const auto rows = tv::models::summarize(*model, size);
    int64_t params = 0, macs = 0;
    for (auto& r : rows) params += r.params, macs += r.macs;
    if (a->json) {
      std::printf("{\"model\":%s,\"frames\":%lld,\"size\":%lld,\"params\":%lld,\"macs\":%lld,\"layers\":[",
                  tv::json_quote(name).c_str(), static_cast<long long>(model->frames()), static_cast<long long>(size),
                  static_cast<long long>(params), static_cast<long long>(macs));
      for (size_t i = 0; i < rows.size(); ++i)
        std::printf("%s{\"name\":%s,\"output\":\"%s\",\"params\":%lld,\"macs\":%lld}", i ? "," : "",
                    tv::json_quote(rows[i].name).c_str(), shape_text(rows[i].output).c_str(),
                    static_cast<long long>(rows[i].params), static_cast<long long>(rows[i].macs));
      std::printf("]}\n");
      return 0;
    }
    std::printf("%s: one clip of %lld frames at %lldx%lld\n", name.c_str(), static_cast<long long>(model->frames()),
                static_cast<long long>(size), static_cast<long long>(size));
    std::printf("%-52s %-18s %12s %16s\n", "layer", "output", "params", "MACs");
    for (auto& r : rows)
      std::printf("%-52s %-18s %12lld %16lld\n", r.name.c_str(), shape_text(r.output).c_str(),
                  static_cast<long long>(r.params), static_cast<long long>(r.macs));
    std::printf("%-52s %-18s %12lld %16lld\n", "total", "", static_cast<long long>(params),
                static_cast<long long>(macs));
    std::printf("parameters %.2f M, multiply-adds %.2f G per clip\n", static_cast<double>(params) / 1e6,
                static_cast<double>(macs) / 1e9);
    return 0;
  };
}

}  // namespace tvcli
