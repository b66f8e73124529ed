// libFuzzer target: the search state file (search/evolution.h Evolution::from_json)
// for a fixed small configuration in the "tiny" space. A state that loads must
// save and load again, and the search must carry on from it: a few candidates
// are drawn and recorded, and the state is saved again.
#include "fuzz/fuzz_common.h"
#include "search/evolution.h"

using namespace detnas;

namespace {
search::EvolutionConfig config() {
  search::EvolutionConfig c;
  c.population = 4;
  c.parents = 2;
  c.mutants = 1;
  c.crossovers = 1;
  c.generations = 3;
  c.seed = 1;
  return c;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nn::SearchSpace& space = nn::space_by_name("tiny");
  const search::EvolutionConfig cfg = config();
  try {
    search::Evolution e =
        search::Evolution::from_json(space, cfg, std::string(fuzz::as_text(data, size)), "fuzz_state.json");
    const std::string saved = e.to_json();
    search::Evolution again = search::Evolution::from_json(space, cfg, saved, "fuzz_state_saved.json");
    FUZZ_REQUIRE(again.to_json() == saved, "the saved state does not read back the same");
    e.top(3);
    e.best_by_generation();
    for (int k = 0; k < 6 && !e.done(); ++k) e.record(double(k % 3), 0.0);
    e.to_json();
  } catch (const Error&) {
  }
  return 0;
}
