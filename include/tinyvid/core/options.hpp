#pragma once
// TV_ARG declares one option of an options struct the way libtorch's TORCH_ARG does: a private field
// `name_`, a chained setter `name(v)` returning the struct, and a getter `name()`. Layers and functional
// ops take such structs instead of long positional calls:
//   nn::Conv2d(nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false))
// Use it under `private:`-free structs; the field it declares is private, the accessors public:
//   struct PoolOptions { TV_ARG(PoolOptions, int64_t, stride) = 1; };
#define TV_ARG(Self, type, name)                   \
 public:                                           \
  Self& name(const type& v) {                      \
    name##_ = v;                                   \
    return *this;                                  \
  }                                                \
  const type& name() const { return name##_; }     \
                                                   \
 private:                                          \
  type name##_
