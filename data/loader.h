// A prefetching batch loader. Batch i is produced by make_batch(i) on worker
// threads, up to `depth` batches ahead of the consumer, and next() returns the
// batches in index order. Whatever randomness make_batch uses must come from the
// batch index (e.g. an Rng seeded from (seed, index)), so the result does not
// depend on the number of workers or on timing, and a resumed run can start at
// any index and see exactly the batches an uninterrupted run would.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace detnas::data {

template <class Batch>
class PrefetchLoader {
 public:
  using MakeBatch = std::function<Batch(int64_t index)>;
  PrefetchLoader(MakeBatch make_batch, int64_t first_index, int workers, int depth)
      : make_(std::move(make_batch)), next_out_(first_index), next_job_(first_index), depth_(depth < 1 ? 1 : depth) {
    if (workers < 1) workers = 1;
    for (int w = 0; w < workers; ++w) threads_.emplace_back([this] { work(); });
  }
  ~PrefetchLoader() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  PrefetchLoader(const PrefetchLoader&) = delete;
  PrefetchLoader& operator=(const PrefetchLoader&) = delete;

  // The next batch in index order; rethrows a worker's exception (e.g. a corrupt
  // image) in the caller's thread. Also reports how long the caller waited.
  Batch next(double* waited_seconds = nullptr) {
    std::unique_lock<std::mutex> l(mu_);
    auto t0 = std::chrono::steady_clock::now();
    cv_.wait(l, [&] { return ready_.count(next_out_) || errors_.count(next_out_); });
    if (waited_seconds) *waited_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto e = errors_.find(next_out_);
    if (e != errors_.end()) {
      std::exception_ptr ex = e->second;
      errors_.erase(e);
      ++next_out_;
      cv_.notify_all();
      std::rethrow_exception(ex);
    }
    Batch b = std::move(ready_.at(next_out_));
    ready_.erase(next_out_);
    ++next_out_;
    cv_.notify_all();
    return b;
  }
  int64_t next_index() const { return next_out_; }

 private:
  void work() {
    for (;;) {
      int64_t idx;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || next_job_ < next_out_ + depth_; });
        if (stop_) return;
        idx = next_job_++;
      }
      try {
        Batch b = make_(idx);
        std::lock_guard<std::mutex> l(mu_);
        ready_.emplace(idx, std::move(b));
      } catch (...) {
        std::lock_guard<std::mutex> l(mu_);
        errors_.emplace(idx, std::current_exception());
      }
      cv_.notify_all();
    }
  }

  MakeBatch make_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> errors_;
  int64_t next_out_, next_job_;
  int depth_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// A deterministic permutation of [0, n) for epoch `epoch` (Fisher-Yates on an
// Rng seeded from (seed, epoch)).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);
// A seed for per-sample randomness that depends only on its arguments.
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0);

}  // namespace detnas::data
