// Implementation of the test helpers and the doctest listener that counts cases.
#include "tests/test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <sstream>

#include "runtime/rng.h"

namespace detnas::test {

int g_run_cases = 0, g_failed_cases = 0, g_skipped_cases = 0;
static bool g_current_skipped = false;

void test_skip(const std::string& reason) {
  if (!g_current_skipped) g_skipped_cases++;
  g_current_skipped = true;
  std::printf("SKIPPED: %s\n", reason.c_str());
  MESSAGE("SKIPPED: " << reason);
}

namespace {
struct CountingListener : doctest::IReporter {
  explicit CountingListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { g_current_skipped = false; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats& st) override {
    g_run_cases++;
    if (st.failure_flags) g_failed_cases++;
  }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
}  // namespace
REGISTER_LISTENER("counting", 1, CountingListener);

static std::string index_str(int64_t i, const std::vector<int64_t>& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t k = shape.size(); k-- > 0;) {
    int64_t d = shape[k] > 0 ? shape[k] : 1;
    idx[k] = i % d;
    i /= d;
  }
  std::ostringstream os;
  os << "(";
  for (size_t k = 0; k < idx.size(); ++k) os << (k ? "," : "") << idx[k];
  os << ")";
  return os.str();
}

bool check_close(const std::string& what, const std::vector<double>& got, const std::vector<double>& ref,
                 const std::vector<int64_t>& shape, Tol tol) {
  if (got.size() != ref.size()) {
    FAIL_CHECK(what << ": size mismatch, got " << got.size() << " values, expected " << ref.size());
    return false;
  }
  int64_t worst = -1, nbad = 0;
  double worst_excess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double a = got[i], b = ref[i];
    bool ok;
    double excess;
    if (std::isnan(b) || std::isnan(a)) {
      ok = std::isnan(a) && std::isnan(b);
      excess = ok ? 0 : INFINITY;
    } else if (std::isinf(b) || std::isinf(a)) {
      ok = a == b;
      excess = ok ? 0 : INFINITY;
    } else {
      double bound = tol.atol + tol.rtol * std::fabs(b);
      excess = std::fabs(a - b) - bound;
      ok = excess <= 0;
    }
    if (!ok) {
      nbad++;
      if (worst < 0 || excess > worst_excess) {
        worst = int64_t(i);
        worst_excess = excess;
      }
    }
  }
  if (nbad) {
    std::ostringstream os;
    os.precision(9);
    std::ostringstream sh;
    for (size_t k = 0; k < shape.size(); ++k) sh << (k ? "x" : "") << shape[k];
    os << what << ": " << nbad << " of " << got.size() << " elements out of tolerance (atol " << tol.atol << ", rtol "
       << tol.rtol << "), shape " << sh.str() << "; worst at flat " << worst << " " << index_str(worst, shape)
       << ": got " << got[size_t(worst)] << ", expected " << ref[size_t(worst)];
    FAIL_CHECK(os.str());
    return false;
  }
  return true;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

std::vector<double> numeric_grad(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
                                 double h) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double x0 = x[i];
    x[i] = x0 + h;
    double fp = f(x);
    x[i] = x0 - h;
    double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += a[i] * b[i];
  return s;
}

std::vector<double> randn(int64_t n, uint64_t seed, double scale) {
  Rng r(seed);
  std::vector<double> v{};
  v.resize(size_t(n));
  for (auto& x : v) x = r.normal() * scale;
  return v;
}

std::vector<float> randn_f(int64_t n, uint64_t seed, double scale) {
  Rng r(seed);
  std::vector<float> v{};
  v.resize(size_t(n));
  for (auto& x : v) x = float(r.normal() * scale);
  return v;
}

std::string detnas_binary() {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return "";
  std::string self(exe, size_t(n));
  std::string dir = self.substr(0, self.rfind('/'));
  return dir.substr(0, dir.rfind('/')) + "/bin/detnas";
}

std::string run_capture(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
  *status = pclose(p);
  return out;
}

bool RunResult::exited() const { return !timed_out && status != -1 && WIFEXITED(status); }
int RunResult::exit_code() const { return exited() ? WEXITSTATUS(status) : -1; }
std::string RunResult::describe() const {
  if (timed_out) return "timed out after the limit (killed)";
  if (status == -1) return "could not be started";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "status " + std::to_string(status);
}

namespace {
double now_seconds() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}
// Starts argv with stdout+stderr into a pipe (returned in *out_fd) and stdin
// from /dev/null; returns the pid, or -1.
pid_t spawn_captured(const std::vector<std::string>& argv, int* out_fd) {
  int fd[2];
  if (argv.empty() || pipe2(fd, O_CLOEXEC) != 0) return -1;
  std::vector<char*> a;  // built before fork: the child only calls async-signal-safe functions
  for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fd[0]);
    close(fd[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fd[1], 1);  // dup2 clears close-on-exec on 1 and 2
    dup2(fd[1], 2);
    const int devnull = open("/dev/null", O_RDONLY);  // no malloc between fork and exec
    if (devnull >= 0) dup2(devnull, 0);
    execv(a[0], a.data());
    _exit(127);
  }
  close(fd[1]);
  *out_fd = fd[0];
  return pid;
}
}  // namespace

std::vector<RunResult> run_argv_all(const std::vector<std::vector<std::string>>& cmds, int jobs, double timeout_s) {
  struct Running {
    size_t index;
    pid_t pid;
    int fd;
    double start;
  };
  std::vector<RunResult> results(cmds.size());
  std::vector<Running> running;
  size_t next = 0;
  if (jobs < 1) jobs = 1;
  char buf[4096];
  while (next < cmds.size() || !running.empty()) {
    while (next < cmds.size() && int(running.size()) < jobs) {
      int fd = -1;
      const pid_t pid = spawn_captured(cmds[next], &fd);
      if (pid > 0) running.push_back({next, pid, fd, now_seconds()});
      ++next;  // a failed start leaves status -1 ("could not be started")
    }
    if (running.empty()) continue;
    std::vector<pollfd> fds;
    for (const Running& r : running) fds.push_back({r.fd, POLLIN, 0});
    const int n = poll(fds.data(), nfds_t(fds.size()), 200);
    if (n < 0 && errno != EINTR) break;
    for (size_t k = running.size(); k-- > 0;) {
      Running& r = running[k];
      RunResult& res = results[r.index];
      bool finished = false;
      if (fds[k].revents) {
        const ssize_t got = read(r.fd, buf, sizeof buf);
        if (got > 0)
          res.out.append(buf, size_t(got));
        else if (!(got < 0 && errno == EINTR))
          finished = true;  // EOF: the child (and anything holding its output) is done
      }
      if (!finished && now_seconds() - r.start > timeout_s) {
        res.timed_out = true;
        kill(r.pid, SIGKILL);
        finished = true;
      }
      if (!finished) continue;
      close(r.fd);
      int st = 0;
      while (waitpid(r.pid, &st, 0) < 0 && errno == EINTR) {
      }
      res.status = st;
      running.erase(running.begin() + std::ptrdiff_t(k));
    }
  }
  return results;
}

std::vector<std::string> argv_words(const std::string& bin, const std::string& words,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> a{bin};
  std::istringstream in(words);
  for (std::string w; in >> w;) a.push_back(w);
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

RunResult run_argv(const std::vector<std::string>& argv, double timeout_s) {
  return run_argv_all({argv}, 1, timeout_s)[0];
}

std::vector<std::string> mpirun_argv(int np) {
  int st = 0;
  std::string path = run_capture("command -v mpirun", &st);
  while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
  if (st != 0 || path.empty()) path = "mpirun";  // fails visibly at exec
  std::vector<std::string> a{path, "--oversubscribe", "--bind-to", "none"};
  // Under MODE=asan the ranks keep AddressSanitizer and UBSan but not the leak
  // check: Open MPI keeps allocations of its dlopen'ed components until exit and
  // unloads them first, so LeakSanitizer reports them from "<unknown module>",
  // which no suppression can name. Our code's leaks are checked by the rest of the
  // ASan suite, which runs the same code without mpirun.
  const char* prev = std::getenv("ASAN_OPTIONS");
  a.push_back("-x");
  a.push_back(std::string("ASAN_OPTIONS=") + (prev && *prev ? std::string(prev) + ":" : "") + "detect_leaks=0");
  a.push_back("-np");
  a.push_back(std::to_string(np));
  if (::geteuid() == 0) a.insert(a.begin() + 1, "--allow-run-as-root");
  return a;
}

std::string without_timings(const std::string& text) {
  static const std::regex kTimes(",\"(seconds|recal_seconds|infer_seconds|rank)\":[-0-9.eE+]+");
  return std::regex_replace(text, kTimes, "");
}

}  // namespace detnas::test
