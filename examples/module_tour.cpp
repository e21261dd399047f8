// Modules, a loss, SGD and the DNR authors' schedule: the README's example as a program that runs.
// A small network learns to tell bright-left from bright-right 16 x 16 images.
#include <tinyvid/tinyvid.hpp>

#include <cstdio>

using namespace tv::nn;

struct Net : UnaryModule<float> {  // UnaryModule: one tensor in, one out
  Net() {
    conv1 = register_module("conv1", std::make_shared<Conv2d<float>>(Conv2dOptions(3, 8, 3).stride(2).padding(1).bias(false)));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d<float>>(BatchNormOptions(8)));
    fc = register_module("fc", std::make_shared<Linear<float>>(8 * 4 * 4, 2));
  }
  tv::Tensor<float> forward(const tv::Tensor<float>& x) override {
    auto y = tv::max_pool2d(tv::relu((*bn1)((*conv1)(x))), tv::MaxPool2dOptions(3).stride(2).padding(1));
    return (*fc)(y.flatten(1));
  }
  std::shared_ptr<Conv2d<float>> conv1;
  std::shared_ptr<BatchNorm2d<float>> bn1;
  std::shared_ptr<Linear<float>> fc;
};

// A batch of noisy images whose left or right half is slightly brighter; the label says which.
static void make_batch(tv::Generator& gen, int64_t n, tv::Tensor<float>& images, tv::Tensor<int64_t>& labels) {
  images = tv::normal<float>({n, 3, 16, 16}, 0, 1, gen);
  labels = tv::Tensor<int64_t>::empty({n});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t side = static_cast<int64_t>(gen.randint(2));
    labels.data()[i] = side;
    images.select(0, i).narrow(2, side * 8, 8).add_(tv::full<float>({3, 16, 8}, 0.3f));
  }
}

int main() {
  tv::manual_seed(0);
  Net net;
  for (auto& [name, t] : net.state_dict()) std::printf("%-24s %s\n", name.c_str(), tv::to_string(t.shape()).c_str());
  tv::optim::SGD opt(net.parameters(), tv::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4));
  const int64_t epochs = 5, iters_per_epoch = 20;
  auto sched = tv::optim::mmcv0_cosine(0.1, epochs, /*warmup_iters=*/10, /*warmup_ratio=*/0.01);
  tv::Generator data(1);
  for (int64_t epoch = 0; epoch < epochs; ++epoch)
    for (int64_t iter = 0; iter < iters_per_epoch; ++iter) {
      tv::Tensor<float> images;
      tv::Tensor<int64_t> labels;
      make_batch(data, 32, images, labels);
      auto loss = tv::cross_entropy(net(images), labels);
      opt.zero_grad();
      loss.backward();
      const double norm = tv::optim::clip_grad_norm(net.parameters(), 40.0);
      opt.set_lr(sched.lr(epoch, iter, iters_per_epoch));
      opt.step();
      if (iter % 10 == 0)
        std::printf("epoch %lld iter %2lld  lr %.4f  loss %.4f  grad norm %.3f\n", static_cast<long long>(epoch),
                    static_cast<long long>(iter), opt.lr(), loss.item(), norm);
    }
  net.eval();
  tv::Tensor<float> images;
  tv::Tensor<int64_t> labels;
  make_batch(data, 200, images, labels);
  tv::NoGradGuard no_grad;
  const double top1 = tv::topk_accuracy(net(images), labels, 1);
  std::printf("eval top-1 %.3f\n", top1);
  return top1 > 0.9 ? 0 : 1;
}
