#pragma once
// The one header a user includes: the tensor engine, autograd and its ops.
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/core/print.hpp"
#include "tinyvid/core/shape.hpp"
#include "tinyvid/core/storage.hpp"
#include "tinyvid/core/tensor.hpp"

#include "tinyvid/autograd/engine.hpp"
#include "tinyvid/autograd/grad_mode.hpp"
#include "tinyvid/autograd/gradcheck.hpp"
#include "tinyvid/autograd/node.hpp"

#include "tinyvid/ops/creation.hpp"
#include "tinyvid/ops/elementwise.hpp"
#include "tinyvid/ops/index.hpp"
#include "tinyvid/ops/inplace.hpp"
#include "tinyvid/ops/join.hpp"
#include "tinyvid/ops/matmul.hpp"
#include "tinyvid/ops/reduce.hpp"
#include "tinyvid/ops/view.hpp"
