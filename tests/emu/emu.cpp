// CPU SIMT emulator, scheduler. The blocks of a launch run one after another on a
// new OS thread whose `__shared__` (thread_local) storage is poisoned before every
// block; each CUDA thread of the block runs as a fiber with a stack from a pool. Fibers switch only
// at barriers, warp-synchronous intrinsics and, in random order, at atomics; the
// order in which ready fibers (and blocks) run is selectable. Errors — bad launch
// configurations, divergent barriers, warp intrinsics that cannot complete,
// dynamic shared memory overruns — throw detnas::Error naming kernel, block, thread.
// Not a performance model and not a memory model: see tests/emu/README.md.
#include "tests/emu/emu.h"

#include <link.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/rng.h"
#include "tests/emu/fiber.h"
#ifdef DETNAS_EMU_GPU
#include "tests/emu/gpu/pkeys.h"
#endif

// The per-block dynamic shared memory: every `extern __shared__` array of an
// emulated object is renamed to this symbol (tests/emu/postprocess.sh).
namespace {
constexpr size_t kGuardBytes = 4096;  // checked after each block, past the launch's size
constexpr size_t kDynamicBufferBytes = detnas::emu::kMaxDynamicSharedOptIn + kGuardBytes;
constexpr unsigned char kPoisonByte = 0xFF;  // NaN in float/double: reads of unwritten memory show
constexpr unsigned char kGuardByte = 0xA5;
}  // namespace
extern "C" {
alignas(256) thread_local unsigned char detnas_emu_dynamic_shared[kDynamicBufferBytes];
}

namespace detnas::emu {
namespace {

// ---- settings and the launch log ----------------------------------------------------
std::mutex g_launch_mutex;  // one launch at a time (blocks run one after another anyway)
std::mutex g_state_mutex;   // settings, log, attributes
ThreadOrder g_order = ThreadOrder::Forward;
uint64_t g_seed = 1;
std::map<std::string, std::array<int64_t, 3>> g_log;
std::map<const void*, int> g_max_dynamic_shared;

// ---- one block --------------------------------------------------------------------
enum class State { Ready, AtBarrier, AtWarp, Done };
struct Fiber {
  fiber::Context ctx;
  char* stack = nullptr;
  uint3 tid{};
  int linear = 0;
  State state = State::Ready;
  const char* waiting_at = "";
  unsigned wait_mask = 0;
  int bar_pred = 0, bar_result = 0;
  uint64_t wres = 0;
  bool wvalid = false;
  std::exception_ptr error;
#if defined(DETNAS_EMU_ASAN)
  void* fake_stack = nullptr;
#endif
};
struct Collective {
  detail::WarpOp op;
  const char* what;
  unsigned mask, arrived;
  int size, width;
  uint64_t bits[32];
  int arg[32];
};
struct Launch {
  std::string name;
  dim3 grid, block;
  size_t shmem;
  detail::Thunk thunk;
  void* ctx;
  ThreadOrder order;
  uint64_t seed;
};
struct Block {
  const Launch* L;
  uint3 idx;
  int nthreads;
  std::vector<Fiber> fibers;
  std::vector<std::vector<Collective>> warps;
  fiber::Context sched;
  Fiber* cur = nullptr;
  Rng rng;
#if defined(DETNAS_EMU_ASAN)
  const void* sched_stack_bottom = nullptr;
  size_t sched_stack_size = 0;
#endif
};
thread_local Block* tl_block = nullptr;

using ::detnas::detail::cat;

std::string str3(const uint3& v) { return cat("(", v.x, ",", v.y, ",", v.z, ")"); }
std::string hex(unsigned m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", m);
  return buf;
}
// "0-15, 17" for a lane bit set.
std::string lanes_str(unsigned m) {
  std::string s;
  for (int i = 0; i < 32;) {
    if (!(m >> i & 1u)) {
      ++i;
      continue;
    }
    int j = i;
    while (j + 1 < 32 && (m >> (j + 1) & 1u)) ++j;
    s += cat(s.empty() ? "" : ", ", i, j > i ? cat("-", j) : std::string());
    i = j + 1;
  }
  return s.empty() ? "none" : s;
}
std::string where(const Block& b) { return cat("emu: kernel ", b.L->name, ", block ", str3(b.idx), ": "); }

Block& current_block(const char* what) {
  Block* b = tl_block;
  if (!b || !b->cur) DETNAS_FAIL("emu: ", what, " called outside an emulated kernel");
  return *b;
}

void yield_to_scheduler(Block& b, Fiber& f) {
#if defined(DETNAS_EMU_ASAN)
  __sanitizer_start_switch_fiber(f.state == State::Done ? nullptr : &f.fake_stack, b.sched_stack_bottom,
                                 b.sched_stack_size);
#endif
  fiber::switch_to(f.ctx, b.sched);
#if defined(DETNAS_EMU_ASAN)
  __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

void resume(Block& b, Fiber& f) {
  b.cur = &f;
#if defined(DETNAS_EMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack, fiber::kStackBytes);
#endif
  fiber::switch_to(b.sched, f.ctx);
#if defined(DETNAS_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  b.cur = nullptr;
}

void fiber_main(void* arg) {
  Fiber& f = *static_cast<Fiber*>(arg);
  Block& b = *tl_block;
#if defined(DETNAS_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &b.sched_stack_bottom, &b.sched_stack_size);
#endif
  try {
    b.L->thunk(b.L->ctx);
  } catch (...) {
    f.error = std::current_exception();
  }
  f.state = State::Done;
  yield_to_scheduler(b, f);
  std::abort();  // a finished fiber is never resumed
}

// Completes a warp collective: every lane that arrived gets its result.
void complete(Block& b, int w, const Collective& c) {
  using detail::WarpOp;
  unsigned votes = 0;
  for (int l = 0; l < 32; ++l)
    if ((c.arrived >> l & 1u) && c.bits[l]) votes |= 1u << l;
  for (int l = 0; l < 32; ++l) {
    if (!(c.arrived >> l & 1u)) continue;
    Fiber& f = b.fibers[size_t(w * 32 + l)];
    f.wvalid = true;
    f.wres = 0;
    int base = l & ~(c.width - 1), src = l;
    switch (c.op) {
      case WarpOp::Sync:
        break;
      case WarpOp::Ballot:
        f.wres = votes;
        break;
      case WarpOp::Any:
        f.wres = votes != 0;
        break;
      case WarpOp::All:
        f.wres = votes == c.arrived;
        break;
      case WarpOp::Idx:
        src = base + (c.arg[l] & (c.width - 1));
        break;
      case WarpOp::Up:
        src = l - c.arg[l] >= base ? l - c.arg[l] : l;
        break;
      case WarpOp::Down:
        src = l + c.arg[l] < base + c.width ? l + c.arg[l] : l;
        break;
      case WarpOp::Xor:
        src = (l ^ c.arg[l]) < base + c.width ? (l ^ c.arg[l]) : l;
        break;
    }
    if (c.op == WarpOp::Idx || c.op == WarpOp::Up || c.op == WarpOp::Down || c.op == WarpOp::Xor) {
      f.wvalid = src >= 0 && src < 32 && (c.arrived >> src & 1u);
      f.wres = f.wvalid ? c.bits[src] : 0;
    }
    f.state = State::Ready;
  }
}

// Lanes of warp w that exist in the block and have not exited.
unsigned live_lanes(const Block& b, int w) {
  unsigned m = 0;
  for (int l = 0; l < 32 && w * 32 + l < b.nthreads; ++l)
    if (b.fibers[size_t(w * 32 + l)].state != State::Done) m |= 1u << l;
  return m;
}

[[noreturn]] void fail_stuck_collective(const Block& b, int w, const Collective& c) {
  unsigned missing = c.mask & live_lanes(b, w) & ~c.arrived;
  int l = __builtin_ctz(missing);
  const Fiber& f = b.fibers[size_t(w * 32 + l)];
  std::string elsewhere =
      f.state == State::AtWarp ? cat(f.waiting_at, " with mask ", hex(f.wait_mask)) : std::string(f.waiting_at);
  DETNAS_FAIL(where(b), c.what, " with mask ", hex(c.mask), " in warp ", w, " cannot complete: lanes ",
              lanes_str(c.arrived), " arrived, lanes ", lanes_str(missing), " named in the mask did not (lane ", l,
              ", thread ", str3(f.tid), ", waits at ", elsewhere, "): a deadlock on a GPU");
}

// Called when no fiber is ready. Returns false when every fiber has finished.
bool resolve(Block& b) {
  bool progressed = false;
  for (size_t w = 0; w < b.warps.size(); ++w) {
    auto& list = b.warps[w];
    unsigned live = live_lanes(b, int(w));
    for (size_t i = 0; i < list.size();) {
      if ((list[i].mask & live & ~list[i].arrived) == 0) {
        complete(b, int(w), list[i]);
        list.erase(list.begin() + std::ptrdiff_t(i));
        progressed = true;
      } else {
        ++i;
      }
    }
  }
  if (progressed) return true;
  for (size_t w = 0; w < b.warps.size(); ++w)
    if (!b.warps[w].empty()) fail_stuck_collective(b, int(w), b.warps[w].front());
  int at_barrier = 0, done = 0, count = 0;
  const Fiber* first_done = nullptr;
  const char* what = "__syncthreads";
  for (const Fiber& f : b.fibers) {
    if (f.state == State::Done) {
      ++done;
      if (!first_done) first_done = &f;
    } else {
      ++at_barrier;
      what = f.waiting_at;
      count += f.bar_pred;
    }
  }
  if (at_barrier == 0) return false;
  if (done > 0)
    DETNAS_FAIL(where(b), what, " reached by only ", at_barrier, " of ", b.nthreads, " threads; ", done,
                " exited without reaching it (first: thread ", str3(first_done->tid),
                "): a barrier in divergent code, a deadlock on a GPU");
  for (Fiber& f : b.fibers) {
    f.bar_result = count;
    f.state = State::Ready;
  }
  return true;
}

std::vector<int> order_of(int n, ThreadOrder order, Rng& rng) {
  std::vector<int> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) p[size_t(i)] = order == ThreadOrder::Reverse ? n - 1 - i : i;
  if (order == ThreadOrder::Random)
    for (int i = n - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(rng.below(uint64_t(i) + 1))]);
  return p;
}

void run_block(const Launch& L, uint3 idx, uint64_t block_linear) {
  Block b;
  b.L = &L;
  b.idx = idx;
  b.nthreads = int(L.block.x * L.block.y * L.block.z);
  b.fibers.resize(static_cast<size_t>(b.nthreads));
  b.warps.resize(size_t((b.nthreads + 31) / 32));
  b.rng.seed_with(L.seed * 0x9E3779B97F4A7C15ULL + block_linear);
  tl_block = &b;
  unsigned char* dyn = detnas_emu_dynamic_shared;
  size_t painted = std::min(kDynamicBufferBytes, L.shmem + kGuardBytes);
  std::memset(dyn, kPoisonByte, L.shmem);
  std::memset(dyn + L.shmem, kGuardByte, painted - L.shmem);
  for (int i = 0; i < b.nthreads; ++i) {
    Fiber& f = b.fibers[size_t(i)];
    f.linear = i;
    f.tid = {unsigned(i) % L.block.x, unsigned(i) / L.block.x % L.block.y, unsigned(i) / (L.block.x * L.block.y)};
    f.stack = fiber::pooled_stack(size_t(i));
#if defined(DETNAS_EMU_ASAN)
    // The previous fiber on this stack ended inside fiber_main, whose frame (at the
    // top) was never popped; clear its redzones before laying out the new one.
    ASAN_UNPOISON_MEMORY_REGION(f.stack + fiber::kStackBytes - 16384, 16384);
#endif
    fiber::init(f.ctx, f.stack, fiber::kStackBytes, &fiber_main, &f);
  }
  try {
    for (;;) {
      bool ran = true;
      while (ran) {
        ran = false;
        for (int i : order_of(b.nthreads, L.order, b.rng)) {
          Fiber& f = b.fibers[size_t(i)];
          if (f.state != State::Ready) continue;
          resume(b, f);
          ran = true;
          if (f.error) std::rethrow_exception(f.error);
        }
      }
      if (!resolve(b)) break;
    }
  } catch (...) {
#if defined(DETNAS_EMU_ASAN)
    // The fibers left suspended never return: clear their frames' redzones so
    // the next block can reuse the stacks.
    for (const Fiber& f : b.fibers)
      if (f.state != State::Done) ASAN_UNPOISON_MEMORY_REGION(f.stack, fiber::kStackBytes);
#endif
    throw;
  }
  for (size_t i = L.shmem; i < painted; ++i)
    if (dyn[i] != kGuardByte)
      DETNAS_FAIL(where(b), "wrote past the end of its ", L.shmem, " bytes of dynamic shared memory (at byte offset ",
                  i, ")");
  tl_block = nullptr;
}

// Block-scope `__shared__` variables are thread_locals of the executable, in its
// .tbss (zero-initialised thread-local) range. The worker thread runs only kernel
// code and the emulator (whose one thread-local, tl_block, is set per block), so
// that whole range can be poisoned before each block, like the GPU's undefined
// shared memory; the dynamic buffer (painted per block) is skipped. Located with
// dl_iterate_phdr: the first object is the executable, dlpi_tls_data its TLS
// block on the calling thread.
struct TlsRange {
  unsigned char* begin = nullptr;
  unsigned char* end = nullptr;
};
TlsRange executable_tbss() {
  TlsRange r;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          auto* base = static_cast<unsigned char*>(info->dlpi_tls_data);
          if (ph.p_type == PT_TLS && base) *static_cast<TlsRange*>(out) = {base + ph.p_filesz, base + ph.p_memsz};
        }
        return 1;  // the executable only
      },
      &r);
  unsigned char* dyn = detnas_emu_dynamic_shared;
  auto* probe = reinterpret_cast<unsigned char*>(&tl_block);
  if (!(r.begin <= dyn && dyn + kDynamicBufferBytes <= r.end && r.begin <= probe && probe < r.end)) return {};
  return r;
}
void poison_static_shared(const TlsRange& t) {
  unsigned char* dyn = detnas_emu_dynamic_shared;
  std::memset(t.begin, kPoisonByte, size_t(dyn - t.begin));
  std::memset(dyn + kDynamicBufferBytes, kPoisonByte, size_t(t.end - (dyn + kDynamicBufferBytes)));
  tl_block = nullptr;
}

}  // namespace

const char* order_name(ThreadOrder order) {
  switch (order) {
    case ThreadOrder::Forward:
      return "forward";
    case ThreadOrder::Reverse:
      return "reverse";
    case ThreadOrder::Random:
      return "random";
  }
  return "?";
}
void set_thread_order(ThreadOrder order, uint64_t seed) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  g_order = order;
  g_seed = seed;
}
ThreadOrder thread_order() {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  return g_order;
}
ScopedThreadOrder::ScopedThreadOrder(ThreadOrder order, uint64_t seed) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  saved_order_ = g_order;
  saved_seed_ = g_seed;
  g_order = order;
  g_seed = seed;
}
ScopedThreadOrder::~ScopedThreadOrder() { set_thread_order(saved_order_, saved_seed_); }

std::string bare_kernel_name(const std::string& s) {
  std::string t;
  int depth = 0;  // drop template arguments
  for (char ch : s) {
    if (ch == '<')
      ++depth;
    else if (ch == '>')
      --depth;
    else if (depth == 0 && ch != '(' && ch != ')' && ch != ' ' && ch != '&')
      t += ch;
  }
  size_t k = t.rfind("::");
  return k == std::string::npos ? t : t.substr(k + 2);
}

int64_t launch_count(const std::string& kernel, ThreadOrder order) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  auto it = g_log.find(kernel);
  return it == g_log.end() ? 0 : it->second[size_t(order)];
}

namespace detail {

void set_max_dynamic_shared(const void* kernel, int bytes) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  g_max_dynamic_shared[kernel] = bytes;
}

void run_grid(const char* name, const void* kernel, dim3 grid, dim3 block, size_t shmem, Thunk thunk, void* ctx) {
  Launch L{bare_kernel_name(name), grid, block, shmem, thunk, ctx, ThreadOrder::Forward, 1};
  DETNAS_CHECK(tl_block == nullptr, "emu: kernel ", L.name, " launched from inside a kernel (not emulated)");
  size_t shmem_limit = kDefaultSharedLimit;
  {
    std::lock_guard<std::mutex> lock(g_state_mutex);
    L.order = g_order;
    L.seed = g_seed;
    auto it = g_max_dynamic_shared.find(kernel);
    if (it != g_max_dynamic_shared.end()) shmem_limit = size_t(it->second);
  }
  const std::string cfg = cat("emu: kernel ", L.name, ": invalid launch configuration (grid ", str3(grid), ", block ",
                              str3(block), ", ", shmem, " bytes of dynamic shared memory): ");
  const char* gpu = " (cudaErrorInvalidConfiguration on a GPU)";
  uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  DETNAS_CHECK(block.x && block.y && block.z && grid.x && grid.y && grid.z, cfg, "a dimension is zero", gpu);
  DETNAS_CHECK(block.x <= 1024 && block.y <= 1024 && block.z <= 64, cfg,
               "block dimensions are limited to (1024,1024,64)", gpu);
  DETNAS_CHECK(nthreads <= uint64_t(kMaxThreadsPerBlock), cfg, "block has ", nthreads, " threads, more than ",
               kMaxThreadsPerBlock, gpu);
  DETNAS_CHECK(grid.x <= 0x7fffffffu && grid.y <= 65535 && grid.z <= 65535, cfg,
               "grid dimensions are limited to (2^31-1,65535,65535)", gpu);
  DETNAS_CHECK(shmem <= shmem_limit, cfg, "more dynamic shared memory than the kernel's limit of ", shmem_limit,
               " bytes (raise it with cudaFuncSetAttribute up to ", kMaxDynamicSharedOptIn, ")", gpu);
  uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  DETNAS_CHECK(nblocks * nthreads <= (uint64_t(1) << 24), cfg, nblocks * nthreads,
               " threads are too many to emulate in a test: use a smaller problem");

  std::lock_guard<std::mutex> launch_lock(g_launch_mutex);
  Rng rng(L.seed ^ 0xB10C5EEDULL);
  const std::vector<int> blocks = order_of(int(nblocks), L.order, rng);
  auto block_index = [&](int bl) {
    const uint64_t u = uint64_t(bl);
    return uint3{unsigned(u % grid.x), unsigned(u / grid.x % grid.y), unsigned(u / (uint64_t(grid.x) * grid.y))};
  };
  std::exception_ptr error;
  // All blocks on one new thread, its static __shared__ storage poisoned before
  // each block; where that storage cannot be located, a fresh (zeroed) thread per block.
  bool located = true;
  std::thread worker([&] {
#ifdef DETNAS_EMU_GPU
    gpu::DeviceAccess access;  // kernel threads may touch device memory (tests/emu/gpu/pkeys.h)
#endif
    try {
      const TlsRange tbss = executable_tbss();
      located = tbss.begin != nullptr;
      for (size_t i = 0; located && i < blocks.size(); ++i) {
        poison_static_shared(tbss);
        run_block(L, block_index(blocks[i]), uint64_t(blocks[i]));
      }
    } catch (...) {
      error = std::current_exception();
    }
  });
  worker.join();
  for (size_t i = 0; !located && !error && i < blocks.size(); ++i) {
    std::thread t([&] {
#ifdef DETNAS_EMU_GPU
      gpu::DeviceAccess access;
#endif
      try {
        run_block(L, block_index(blocks[i]), uint64_t(blocks[i]));
      } catch (...) {
        error = std::current_exception();
      }
    });
    t.join();
  }
  if (error) std::rethrow_exception(error);
  std::lock_guard<std::mutex> lock(g_state_mutex);
  g_log[L.name][size_t(L.order)]++;
}

const uint3& thread_idx() { return current_block("threadIdx").cur->tid; }
const uint3& block_idx() { return current_block("blockIdx").idx; }
const dim3& block_dim() { return current_block("blockDim").L->block; }
const dim3& grid_dim() { return current_block("gridDim").L->grid; }

int block_barrier(int pred, const char* what) {
  Block& b = current_block(what);
  Fiber& f = *b.cur;
  f.bar_pred = pred;
  f.state = State::AtBarrier;
  f.waiting_at = what;
  yield_to_scheduler(b, f);
  return f.bar_result;
}

WarpResult warp_collective(WarpOp op, unsigned mask, uint64_t bits, int arg, int width, int size, const char* what) {
  Block& b = current_block(what);
  Fiber& f = *b.cur;
  int lane = f.linear % 32, w = f.linear / 32;
  DETNAS_CHECK(mask >> lane & 1u, where(b), what, " called by thread ", str3(f.tid), " (lane ", lane, ") with mask ",
               hex(mask), " that does not name its own lane");
  DETNAS_CHECK(width >= 1 && width <= 32 && (width & (width - 1)) == 0, where(b), what, " with width ", width,
               ": must be a power of 2 in [1, 32]");
  auto& list = b.warps[size_t(w)];
  Collective* c = nullptr;
  for (Collective& x : list)
    if (x.mask == mask && !(x.arrived >> lane & 1u)) {
      c = &x;
      break;
    }
  if (c && (c->op != op || c->size != size || c->width != width))
    DETNAS_FAIL(where(b), "lanes of warp ", w, " reached different warp intrinsics with mask ", hex(mask), ": ",
                c->what, " (", c->size, "-byte values, width ", c->width, ") and ", what, " (", size,
                "-byte values, width ", width, ") at thread ", str3(f.tid));
  if (!c) {
    list.push_back(Collective{op, what, mask, 0, size, width, {}, {}});
    c = &list.back();
  }
  c->bits[lane] = bits;
  c->arg[lane] = arg;
  c->arrived |= 1u << lane;
  f.state = State::AtWarp;
  f.waiting_at = what;
  f.wait_mask = mask;
  yield_to_scheduler(b, f);
  return {f.wres, f.wvalid};
}

void atomic_point() {
  Block* b = tl_block;
  if (!b || !b->cur || b->L->order != ThreadOrder::Random) return;
  if (b->rng.next_u64() & 1) yield_to_scheduler(*b, *b->cur);  // stays ready: others may run first
}

}  // namespace detail
}  // namespace detnas::emu
