#pragma once
// tinyvid forward --model NAME --weights W.safetensors --input X.safetensors --output Y.safetensors
//                 [--num-classes K] [--frames T] [--set key=value ...] [--set device=cuda]
#include <memory>

#include "common.hpp"

namespace tvcli {

inline Run add_forward(CLI::App& cmd) {
  struct Args {
    ModelArgs m;
    Text weights, input, output;
  };
  auto a = std::make_shared<Args>();
  a->m.add(cmd);
  add_text(cmd, a->weights, "--weights", "W", "the model's weights (.safetensors)");
  add_text(cmd, a->input, "--input", "X", ".safetensors with a tensor 'input': N*T x 3 x H x W");
  add_text(cmd, a->output, "--output", "Y", ".safetensors to write, with the class scores as 'output'");
  a->m.add_sets(cmd);
  cmd.footer("Runs the model in eval mode on the tensor named 'input' and writes the class scores as 'output'.\n" +
             model_help());
  return [a] {
    const tv::train::DeviceChoice device = a->m.device();
    auto model = tv::models::make_model<float>(a->m.model.need(), a->m.config());
    tv::io::load_weights(*model, a->weights.need());
    model->to(device.device);
    const std::string input_path = a->input.need();
    auto inputs = tv::io::load_safetensors<float>(input_path);
    auto it = inputs.find("input");
    TV_CHECK(it != inputs.end(), input_path, ": no tensor named 'input' (expected N*T x 3 x H x W)");
    tv::check_finite(it->second, input_path + ": tensor 'input'");  // the model checks too, but cannot name the file
    model->eval();
    tv::NoGradGuard no_grad;
    const auto scores = model->forward(it->second.to(device.device)).to(tv::Device::CPU);
    const std::string output = a->output.need();
    tv::io::save_safetensors<float>(output, {{"output", scores}});
    std::printf("wrote %s: output %s\n", output.c_str(), shape_text(scores.shape()).c_str());
    return 0;
  };
}

}  // namespace tvcli
