// CPU strided copy. The innermost dimension is copied as a run when both sides
// are unit-stride there, which covers contiguous() of channel-narrowed views.
#include <cstring>

#include "kernels/copy.h"

namespace detnas::kernels::cpu {

template <typename T>
void strided_copy(const StridedLayout& L, const T* src, T* dst, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  int64_t total = 1;
  for (int k = 0; k < L.rank; ++k) total *= L.shape[k];
  if (total == 0) return;
  const int last = L.rank - 1;
  const int64_t run = L.rank > 0 ? L.shape[last] : 1;
  const bool unit = L.rank == 0 || (L.src_stride[last] == 1 && L.dst_stride[last] == 1);
  const int64_t nruns = total / run;
  const bool acc = mode == GradientMode::Accumulate;
#pragma omp parallel for schedule(static) if (total > 32768)
  for (int64_t r = 0; r < nruns; ++r) {
    int64_t so, dof;
    strided_offsets(L, r * run, &so, &dof);
    const T* s = src + so;
    T* d = dst + dof;
    if (unit) {
      if (acc)
        for (int64_t j = 0; j < run; ++j) d[j] += s[j];
      else
        std::memcpy(d, s, sizeof(T) * size_t(run));
    } else {
      const int64_t ss = L.src_stride[last], ds = L.dst_stride[last];
      for (int64_t j = 0; j < run; ++j) write_grad(d + j * ds, s[j * ss], mode);
    }
  }
}

template void strided_copy<float>(const StridedLayout&, const float*, float*, GradientMode);
template void strided_copy<double>(const StridedLayout&, const double*, double*, GradientMode);

}  // namespace detnas::kernels::cpu
