// Debian's libtorch-dev 1.13 ships c10d's reducer.hpp but not the distributed-autograd (RPC)
// header it includes. reducer.hpp only needs two names from it, for a member it never uses in
// data-parallel training (RPC's distributed autograd context): the callback type and the
// pointer type. This shim declares exactly those, with upstream's definitions
// (torch/csrc/distributed/autograd/context/context.h); nothing here is constructed or called.
// The include path puts it after LibTorch's own headers, so a LibTorch that has the real header
// (the official archives) uses that one.
#pragma once
#include <ATen/core/Tensor.h>
#include <functional>
#include <memory>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};

using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
