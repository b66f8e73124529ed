#include "core/profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace detnas::prof {
namespace {

struct Node {
  int parent;
  std::string name;
  double total_ms = 0;
  long calls = 0;
};

struct Table {
  std::mutex mu;
  std::vector<Node> nodes;
  std::map<std::pair<int, std::string>, int> index;
};

Table& table() {
  static Table* t = new Table;  // never destroyed: scopes may end during static destruction
  return *t;
}

thread_local std::vector<int> stack;

void report_at_exit() { profile_report(); }

}  // namespace

bool enabled() {
  static const bool on = [] {
    const char* v = std::getenv("DETNAS_PROFILE");
    if (!v || !*v || std::strcmp(v, "0") == 0) return false;
    std::atexit(report_at_exit);
    return true;
  }();
  return on;
}

void Scope::begin(const char* name) {
  Table& t = table();
  const int parent = stack.empty() ? -1 : stack.back();
  int id;
  {
    std::lock_guard<std::mutex> lk(t.mu);
    auto [it, fresh] = t.index.try_emplace({parent, name}, int(t.nodes.size()));
    if (fresh) t.nodes.push_back({parent, name});
    id = it->second;
  }
  stack.push_back(id);
  t0_ = std::chrono::steady_clock::now();
}

void Scope::end() {
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
  Table& t = table();
  std::lock_guard<std::mutex> lk(t.mu);
  Node& n = t.nodes[size_t(stack.back())];
  n.total_ms += ms;
  n.calls += 1;
  stack.pop_back();
}

void profile_report() {
  if (!enabled()) return;
  Table& t = table();
  std::lock_guard<std::mutex> lk(t.mu);
  bool any = false;
  for (const Node& nd : t.nodes) any = any || nd.calls > 0;
  if (!any) return;
  const size_t n = t.nodes.size();
  std::vector<std::vector<int>> kids(n);
  std::vector<int> roots;
  std::vector<double> child_ms(n, 0.0);
  double root_ms = 0;
  for (size_t i = 0; i < n; ++i) {
    const Node& nd = t.nodes[i];
    if (nd.parent < 0) {
      roots.push_back(int(i));
      root_ms += nd.total_ms;
    } else {
      kids[size_t(nd.parent)].push_back(int(i));
      child_ms[size_t(nd.parent)] += nd.total_ms;
    }
  }
  std::fprintf(stderr, "profile (DETNAS_PROFILE): wall ms per scope, children indented under their parent\n");
  std::fprintf(stderr, "%-44s %9s %11s %11s %7s\n", "scope", "calls", "total ms", "self ms", "% root");
  // Depth-first, children by decreasing total time.
  std::vector<std::pair<int, int>> todo;  // (node, depth)
  auto push_sorted = [&](std::vector<int> ids, int depth) {
    std::sort(ids.begin(), ids.end(),
              [&](int a, int b) { return t.nodes[size_t(a)].total_ms < t.nodes[size_t(b)].total_ms; });
    for (int id : ids) todo.push_back({id, depth});  // smallest first: the largest pops first
  };
  push_sorted(roots, 0);
  while (!todo.empty()) {
    auto [id, depth] = todo.back();
    todo.pop_back();
    const Node& nd = t.nodes[size_t(id)];
    if (nd.calls == 0) continue;
    const std::string label = std::string(size_t(2 * depth), ' ') + nd.name;
    std::fprintf(stderr, "%-44s %9ld %11.1f %11.1f %6.1f%%\n", label.c_str(), nd.calls, nd.total_ms,
                 nd.total_ms - child_ms[size_t(id)], root_ms > 0 ? 100.0 * nd.total_ms / root_ms : 0.0);
    push_sorted(kids[size_t(id)], depth + 1);
  }
  for (Node& nd : t.nodes) nd.total_ms = 0, nd.calls = 0;  // kept: open scopes hold their ids
}

}  // namespace detnas::prof
