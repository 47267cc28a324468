// LibTorch's CPU allocator, with transparent huge pages for large tensors.
//
// Why: a fresh activation buffer costs a page fault per 4 KiB on first touch. glibc malloc serves
// big buffers (above its mmap threshold, at most 32 MiB) with fresh mmap()s and unmaps them on
// free, so every large activation of every forward pays those faults again: for mmseg DeepLabV3+
// at 512x512 a 32 MiB depthwise output took 23 ms, 12 ms of it faulting. Asking for huge pages on
// such buffers (madvise MADV_HUGEPAGE, honoured where THP is "madvise" or "always", the Debian
// default is madvise) makes that one fault per 2 MiB. Under jemalloc (bin/deeplab preloads it)
// freed pages are reused and this is skipped: jemalloc manages its own extents.
//
// Those buffers are also kept for reuse when freed (BufferCache below): a forward frees its
// activations and the next forward asks for the same sizes, so with the cache it faults nothing at
// all, as onnxruntime's arena and jemalloc's retained pages do. Measured on deeplabv3_resnet50
// 512x512 (bench/profile-modules.ts): a 1x1 conv 512 -> 2048 at 64x64 took 90 ms with fresh pages
// and 49 ms with reused ones. The cache holds at most DEEPLAB_CPU_CACHE_MB (default 1024) of freed
// buffers; releaseCpuCache() (torch.releaseCpuCache()) gives them back, and so does the first large
// allocation outside inference (a training step after an evaluation must not carry them).
//
// Only tensors made under inference mode, outside CPU autocast, ask (see allocate). Small tensors are allocated as
// LibTorch's default allocator does (64-byte aligned posix_memalign, free). DEEPLAB_HUGEPAGES=0
// turns it off. The allocator interface changed in LibTorch 2.3 (non-const allocate, copy_data):
// both forms are here, only the 1.13 one is built and tested on this machine.
// Installed once per process, before the first tensor is made (addon init); tensors allocated
// earlier keep their own deleter, so switching is safe at any time.
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/InferenceMode.h>
#include <ATen/autocast_mode.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace dl {
namespace {

constexpr size_t kHuge = size_t(2) << 20;      // 2 MiB: the x86-64 huge page
constexpr size_t kThreshold = size_t(4) << 20;  // buffers from 4 MiB up ask for huge pages

void freeAligned(void* p) { std::free(p); }

// Freed large inference buffers, by rounded size, for the next allocation of that size. Never
// destroyed (a tensor freed during process exit still finds it).
struct BufferCache {
  std::mutex mu;
  std::unordered_map<void*, size_t> owned;                 // every buffer from the large path, live or cached
  std::unordered_map<size_t, std::vector<void*>> freeBySize;  // cached ones
  std::atomic<size_t> cached{0};  // read without the lock by allocate's training path
  size_t cap = size_t(1024) << 20;
};

BufferCache& bufferCache() {
  static BufferCache* c = [] {
    auto* b = new BufferCache();
    if (const char* env = std::getenv("DEEPLAB_CPU_CACHE_MB")) b->cap = size_t(std::strtoull(env, nullptr, 10)) << 20;
    return b;
  }();
  return *c;
}

// The deleter of every buffer (raw_deleter too): large ones go back to the cache while it has room.
void release(void* p) {
  if (!p) return;
  BufferCache& c = bufferCache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.owned.find(p);
    if (it != c.owned.end()) {
      if (c.cached + it->second <= c.cap) {
        c.freeBySize[it->second].push_back(p);
        c.cached += it->second;
        return;
      }
      c.owned.erase(it);
    }
  }
  std::free(p);
}

void* takeCached(size_t size) {
  BufferCache& c = bufferCache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.freeBySize.find(size);
  if (it == c.freeBySize.end() || it->second.empty()) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  c.cached -= size;
  return p;
}

void own(void* p, size_t size) {
  BufferCache& c = bufferCache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.owned[p] = size;
}

// Frees every cached buffer; the bytes given back.
size_t dropCached() {
  std::vector<void*> drop;
  size_t bytes = 0;
  {
    BufferCache& c = bufferCache();
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto& [size, ps] : c.freeBySize)
      for (void* p : ps) {
        drop.push_back(p);
        c.owned.erase(p);
        bytes += size;
      }
    c.freeBySize.clear();
    c.cached = 0;
  }
  for (void* p : drop) std::free(p);
  return bytes;
}

// Whether CPU autocast (bf16) is on in this thread.
bool cpuAutocastOn() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

struct HugePageCpuAllocator final : at::Allocator {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  at::DataPtr allocate(size_t n) override {
#else
  at::DataPtr allocate(size_t n) const override {
#endif
    const at::Device cpu(at::DeviceType::CPU);
    if (n == 0) return {nullptr, nullptr, &freeAligned, cpu};
    void* p = nullptr;
    // Only under inference mode: a training forward keeps gigabytes of activations alive at once,
    // and there huge pages made the step slower (measured: ResNet-50 batch 2 forward 2.6 -> 3.2 s),
    // while inference frees and re-faults the same few buffers. Not under CPU autocast either:
    // bf16 buffers are half the size, and there huge pages gained nothing and made calls vary
    // (ResNet-50 512x512 bf16: median 337-390 ms, some calls 475 ms, against 340-351 ms without).
    if (n < kThreshold || !c10::InferenceMode::is_enabled() || cpuAutocastOn()) {
      // A large buffer outside inference (a training step after an evaluation, or bf16): the
      // buffers kept for the next fp32 forward would only sit there, so they are given back.
      if (n >= kThreshold && bufferCache().cached.load(std::memory_order_relaxed) > 0) dropCached();
      // LibTorch's default: 64-byte aligned (c10::alloc_cpu's gAlignment).
      if (posix_memalign(&p, 64, n) != 0 || p == nullptr) throw std::bad_alloc();
      return {p, p, &freeAligned, cpu};
    }
    // Huge-page aligned and rounded, so every 2 MiB of the buffer can be one huge page.
    size_t size = (n + kHuge - 1) / kHuge * kHuge;
    if ((p = takeCached(size))) return {p, p, &release, cpu};
    if (posix_memalign(&p, kHuge, size) != 0 || p == nullptr) throw std::bad_alloc();
    madvise(p, size, MADV_HUGEPAGE);  // advice only: ignored where THP is off
    own(p, size);
    return {p, p, &release, cpu};
  }
  // oneDNN's scratch buffers come through raw_allocate / raw_deallocate (data == context): release
  // tells a large buffer from a small one.
  at::DeleterFnPtr raw_deleter() const override { return &release; }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#endif
};

bool jemallocLoaded() { return dlsym(RTLD_DEFAULT, "mallctl") != nullptr; }

}  // namespace

static bool g_installed = false;

bool hugePagesInstalled() { return g_installed; }

size_t releaseCpuCache() { return dropCached(); }

// Returns whether the huge-page allocator is in use.
bool installCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("DEEPLAB_HUGEPAGES");
    if ((env && std::strcmp(env, "0") == 0) || jemallocLoaded()) return;
    static HugePageCpuAllocator alloc;
    c10::SetCPUAllocator(&alloc, /*priority=*/1);
    g_installed = c10::GetCPUAllocator() == &alloc;
  });
  return g_installed;
}

}  // namespace dl
