// Everything above the backend on every device of the build: a registered model moved to a device trains,
// checkpoints, loads and infers as it does on the CPU, and the config key `device` says clearly when a device
// is missing. In tinyvid_cuda_sim_tests "cuda" is the CUDA backend's kernels run on the host (cuda_sim.cpp),
// whose device memory the host may not touch outside kernels: a host read of device memory anywhere above the
// backend (a forgotten .to(tv::Device::CPU)) fails there. The tensors are tiny because the simulator walks
// every GPU thread in turn.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tinyvid/tinyvid.hpp"
#include "tinyvid/train/config.hpp"
#include "temp_files.hpp"

namespace {

using tv::Device;
using tv::Tensor;

// The devices of this build: the CPU always, CUDA when its backend is there and has a GPU (or the simulator).
std::vector<Device> backends() {
  std::vector<Device> out{Device::CPU};
  if (tv::device_available(Device::CUDA)) out.push_back(Device::CUDA);
  return out;
}

struct ModelCase {
  const char* name;
  std::map<std::string, std::string> set;
};

// Plain TSN (batch norm, consensus before the fc) and TSM with DNR (temporal shift, the cross-layer and
// cross-temporal relay cells and dynamic norms, consensus after the fc): every kind of layer the registry
// builds, at width 4 on 2 frames.
const std::vector<ModelCase>& model_cases() {
  static const std::vector<ModelCase> cases = {
      {"tsn_r18", {{"width", "4"}}},
      {"tsm_r18_dnr", {{"width", "4"}, {"ct_group_frames", "1"}}},
  };
  return cases;
}

// The same weights every time (a generator of its own), built on the CPU as every model is.
std::shared_ptr<tv::models::Recognizer<float>> tiny_model(const ModelCase& c) {
  tv::Generator gen(7);
  return tv::models::make_model<float>(c.name, {.num_classes = 3, .frames = 2, .dropout = 0, .set = c.set}, gen);
}

// |got - want| <= atol + rtol |want| elementwise (NaNs must match), one CHECK per tensor naming the worst element.
// Both are read through .to(CPU): nothing here touches device memory from the host.
void check_close(const std::string& what, const Tensor<float>& got, const Tensor<float>& want, double rtol, double atol) {
  REQUIRE_MESSAGE(got.shape() == want.shape(), what << ": shape " << got.shape() << ", expected " << want.shape());
  const std::vector<float> g = got.to(Device::CPU).to_vector(), w = want.to(Device::CPU).to_vector();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double a = g[i], b = w[i];
    double ratio;
    if (std::isnan(a) || std::isnan(b)) ratio = std::isnan(a) && std::isnan(b) ? 0 : INFINITY;
    else ratio = a == b ? 0 : std::abs(a - b) / (atol + rtol * std::abs(b));
    if (!(ratio <= worst)) worst = ratio, at = i;
  }
  CHECK_MESSAGE(worst <= 1, what << ": element " << at << " is " << (g.empty() ? 0.0f : g[at]) << ", expected "
                                 << (w.empty() ? 0.0f : w[at]) << " (" << worst << " times the tolerance)");
}

// The host copy of every tensor of a state, by name.
std::vector<std::pair<std::string, std::vector<float>>> host_values(const tv::nn::StateDict<float>& state) {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  for (const auto& [name, t] : state) out.emplace_back(name, t.to(Device::CPU).to_vector());
  return out;
}

struct Steps {
  std::vector<double> losses, norms;
};

// A few iterations as the trainer runs them: forward, cross entropy, backward, gradient clipping, SGD with
// momentum and weight decay; the loss read through the host once per step, as the trainer's log does.
Steps train_steps(tv::models::Recognizer<float>& model, tv::optim::SGD& opt, const Tensor<float>& clips,
                  const Tensor<int64_t>& labels, int steps = 2) {
  Steps out;
  model.train();
  for (int s = 0; s < steps; ++s) {
    const Tensor<float> loss = tv::cross_entropy(model(clips), labels);
    out.losses.push_back(loss.detach().to(Device::CPU).item());
    opt.zero_grad();
    loss.backward();
    out.norms.push_back(tv::optim::clip_grad_norm(opt.parameters(), 1.0));
    opt.step();
  }
  return out;
}

}  // namespace

TEST_CASE("device: a registered model trains, checkpoints, loads and infers on every device as on the CPU") {
  tv::Generator data_gen(11);
  const Tensor<float> clips = tv::normal<float>({4, 3, 16, 16}, 0, 1, data_gen);  // 2 clips of 2 frames
  const Tensor<int64_t> labels = tv::tensor<int64_t>({0, 2});
  const auto sgd = tv::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4);
  testing::TempDir dir("device");
  for (const ModelCase& c : model_cases()) {
    // The reference: the same model, batch and steps on the CPU.
    auto ref = tiny_model(c);
    tv::optim::SGD ref_opt(ref->parameters(), sgd);
    const Steps want = train_steps(*ref, ref_opt, clips, labels);
    const auto ref_state = ref->state_dict();

    for (const Device device : backends()) {
      const std::string where = std::string(c.name) + "_on_" + tv::device_name(device);
      INFO(where);
      // Module::to moves parameters and buffers in place; the optimizer, built after, keeps its momenta beside them.
      auto model = tiny_model(c);
      model->to(device);
      for (const auto& named : model->state_dict()) CHECK_MESSAGE(named.second.device() == device, named.first);
      tv::optim::SGD opt(model->parameters(), sgd);
      const Steps got = train_steps(*model, opt, clips.to(device), labels.to(device));
      for (size_t s = 0; s < want.losses.size(); ++s) {
        CHECK_MESSAGE(got.losses[s] == doctest::Approx(want.losses[s]).epsilon(1e-4), "loss of step ", s);
        CHECK_MESSAGE(got.norms[s] == doctest::Approx(want.norms[s]).epsilon(1e-3), "gradient norm of step ", s);
      }
      const auto state = model->state_dict();
      REQUIRE(state.size() == ref_state.size());
      for (size_t i = 0; i < state.size(); ++i) {
        REQUIRE(state[i].first == ref_state[i].first);
        CHECK(state[i].second.device() == device);
        check_close(where + ": " + state[i].first, state[i].second, ref_state[i].second, 1e-3, 1e-4);
      }
      const auto momenta = opt.momentum_buffers();
      for (size_t i = 0; i < momenta.size(); ++i)
        if (momenta[i].defined()) CHECK_MESSAGE(momenta[i].device() == device, "momentum ", i);

      // A checkpoint from the device model goes through the host; the file holds exactly the device's values.
      const std::string weights = (dir.path / (where + ".safetensors")).string();
      tv::io::save_weights(*model, weights);
      const auto saved = host_values(state);
      {
        const auto file = tv::io::load_safetensors<float>(weights);
        REQUIRE(file.size() == saved.size());
        for (const auto& named : saved) CHECK_MESSAGE(file.at(named.first).to_vector() == named.second, named.first);
      }
      // Loading reads host tensors and copies them into the device model's own tensors, which keep their identity
      // and their device (an optimizer built before the load still holds them).
      auto loaded = tiny_model(c);
      loaded->to(device);
      const auto before = loaded->parameters();
      tv::io::load_weights(*loaded, weights);
      const auto params = loaded->parameters();
      for (size_t i = 0; i < params.size(); ++i) CHECK(params[i].is_same(before[i]));
      const auto loaded_state = loaded->state_dict();
      for (size_t i = 0; i < loaded_state.size(); ++i) {
        CHECK_MESSAGE(loaded_state[i].second.device() == device, loaded_state[i].first);
        CHECK_MESSAGE(loaded_state[i].second.to(Device::CPU).to_vector() == saved[i].second, loaded_state[i].first);
      }
      // The optimizer's momenta as a training state saves them: through the host, back onto the parameters' device.
      const std::string state_file = (dir.path / "momenta.safetensors").string();
      tv::io::NamedTensors<float> named_momenta;
      for (size_t i = 0; i < momenta.size(); ++i)
        if (momenta[i].defined()) named_momenta.emplace_back(std::to_string(i), momenta[i]);
      tv::io::save_safetensors<float>(state_file, named_momenta);
      const auto read_momenta = tv::io::load_safetensors<float>(state_file);
      std::vector<Tensor<float>> host_momenta(params.size());
      for (const auto& [key, t] : read_momenta) host_momenta[static_cast<size_t>(std::stoi(key))] = t;
      tv::optim::SGD resumed(params, sgd);
      resumed.load_momentum_buffers(host_momenta);
      const auto restored = resumed.momentum_buffers();
      for (size_t i = 0; i < restored.size(); ++i) {
        REQUIRE(restored[i].defined() == momenta[i].defined());
        if (!restored[i].defined()) continue;
        CHECK(restored[i].device() == device);
        CHECK(restored[i].to(Device::CPU).to_vector() == momenta[i].to(Device::CPU).to_vector());
      }

      // Inference on the device: eval mode, one clip per pass and multi-view fusion of both kinds, against the
      // CPU model; the accuracy of the device's scores is the CPU's.
      tv::NoGradGuard no_grad;
      loaded->eval();
      ref->eval();
      const Tensor<float> on_device = clips.to(device);
      const Tensor<float> scores = loaded->forward(on_device), ref_scores = ref->forward(clips);
      check_close(where + ": eval scores", scores, ref_scores, 1e-3, 1e-5);
      CHECK(tv::topk_accuracy(scores, labels.to(device), 1) == tv::topk_accuracy(ref_scores, labels, 1));
      for (const auto average : {tv::models::AverageClips::Prob, tv::models::AverageClips::Score})
        check_close(where + ": forward_views", loaded->forward_views(on_device, 2, average, /*max_views_per_pass=*/1),
                    ref->forward_views(clips, 2, average), 1e-3, 1e-5);
      ref->train();
    }
    tv::empty_cache();  // the simulator's device memory is checked block by block at every kernel: keep it small
  }
}

TEST_CASE("device: safetensors writes device tensors, strided views too, through the host one at a time") {
  testing::TempDir dir("device_io");
  const std::vector<float> values = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  const Tensor<float> host = tv::tensor<float>(values, {3, 4});
  for (const Device device : backends()) {
    INFO(tv::device_name(device));
    const Tensor<float> a = host.to(device);
    const std::string path = (dir.path / "t.safetensors").string();
    tv::io::save_safetensors<float>(path, {{"a", a}, {"a_t", a.transpose(0, 1)}, {"row", a.narrow(0, 1, 1)}},
                                    {}, tv::io::Dtype::F16);  // through the converting path too
    const auto file = tv::io::load_safetensors<float>(path);
    CHECK(file.at("a").to_vector() == values);
    CHECK(file.at("a_t").to_vector() == host.transpose(0, 1).to_vector());
    CHECK(file.at("row").to_vector() == std::vector<float>{4, 5, 6, 7});
    CHECK(file.at("a").device() == Device::CPU);
    // Printing reads through the host and names the device.
    std::ostringstream printed;
    printed << a;
    CHECK(printed.str().find("11") != std::string::npos);
    if (device != Device::CPU) CHECK(printed.str().find("device='cuda'") != std::string::npos);
  }
}

TEST_CASE("device: pinned host tensors copy to every device and back, and their blocks go back to the pinned cache") {
  // Pinned where a GPU is (the simulator stands one in), ordinary host memory elsewhere.
  const bool gpu = tv::device_available(Device::CUDA) && tv::pinned_allocator() != nullptr;
  const Tensor<float> plain = tv::arange<float>(0, 2 * 3 * 4 * 5).reshape({2, 3, 4, 5});
  Tensor<float> pinned = Tensor<float>::empty_pinned(plain.shape());
  CHECK_FALSE(plain.is_pinned());
  CHECK(pinned.is_pinned() == gpu);
  CHECK(pinned.device() == Device::CPU);
  pinned.copy_(plain);
  for (const Device device : backends()) {
    INFO(tv::device_name(device));
    CHECK(pinned.to(device).to(Device::CPU).to_vector() == plain.to_vector());
  }
  if (gpu) {
    const size_t before = tv::pinned_allocator()->cached_bytes();
    { const Tensor<int64_t> t = Tensor<int64_t>::empty_pinned({1 << 18}); }
    CHECK(tv::pinned_allocator()->cached_bytes() >= before + (size_t{1} << 21));
    tv::empty_cache();
    CHECK(tv::pinned_allocator()->cached_bytes() == 0);
  }
  CHECK_THROWS_WITH_AS((tv::Storage<float>(4, Device::CUDA, true)), doctest::Contains("pinned memory is host memory"),
                       tv::Error);
}

TEST_CASE("device: the config key device is cpu, cuda or cuda:0, and a missing GPU is one clear error") {
  using tv::train::parse_device;
  CHECK(parse_device("cpu", "run.conf:3").device == Device::CPU);
  CHECK(parse_device("cpu", "run.conf:3").text() == "cpu");
  CHECK_THROWS_WITH_AS(parse_device("gpu", "run.conf:3"),
                       doctest::Contains("run.conf:3: expected device cpu, cuda or cuda:N, got 'gpu'"), tv::Error);
  CHECK_THROWS_WITH_AS(parse_device("cudax", "run.conf:3"), doctest::Contains("expected device cpu, cuda or cuda:N"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(parse_device("cuda:-1", "run.conf:3"),
                       doctest::Contains("run.conf:3: expected a whole number >= 0 for 'device', got '-1'"), tv::Error);
  CHECK_THROWS_WITH_AS(parse_device("cuda:", "run.conf:3"), doctest::Contains("for 'device', got ''"), tv::Error);
  // Only the first GPU runs so far: another index is refused on any machine, naming what works.
  CHECK_THROWS_WITH_AS(parse_device("cuda:1", "--set device=cuda:1"),
                       doctest::Contains("--set device=cuda:1: device cuda:1: only the first GPU (cuda or cuda:0) is "
                                         "supported so far"),
                       tv::Error);
  if (tv::device_available(Device::CUDA)) {
    for (const char* text : {"cuda", "cuda:0"}) {
      const tv::train::DeviceChoice d = parse_device(text, "x");
      CHECK(d.device == Device::CUDA);
      CHECK(d.index == 0);
      CHECK(d.text() == "cuda:0");
    }
  } else {
    // The allocator's reason, behind where the key was set: one error, before any tensor is made.
#ifdef TINYVID_WITH_CUDA
    const char* reason = "--set device=cuda: device cuda is not available: ";
#else
    const char* reason = "--set device=cuda: device cuda is not available in this build (it has the cpu only";
#endif
    CHECK_THROWS_WITH_AS(parse_device("cuda", "--set device=cuda"), doctest::Contains(reason), tv::Error);
    CHECK_THROWS_WITH_AS(parse_device("cuda:0", "--set device=cuda:0"), doctest::Contains("device cuda is not available"),
                         tv::Error);
  }
}
