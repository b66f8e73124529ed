// libFuzzer target: the search state file (search/evolution.h Evolution::from_json)
// for a fixed small configuration in the "tiny" space. A state that loads must
// save and load again with equal values, and the search must carry on from it:
// a few candidates are drawn and recorded, and the state is saved again.
#include "fuzz/fuzz_common.h"
#include "search/evolution.h"

using namespace detnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nn::SearchSpace& space = nn::space_by_name("tiny");
  const search::EvolutionConfig cfg = fuzz::fuzz_search_config();
  try {
    search::Evolution e =
        search::Evolution::from_json(space, cfg, std::string(fuzz::as_text(data, size)), "fuzz_state.json");
    search::Evolution again = search::Evolution::from_json(space, cfg, e.to_json(), "fuzz_state_saved.json");
    // Equal values, not equal text: "-0" reads back as 0.
    FUZZ_REQUIRE(again.candidates().size() == e.candidates().size(), "candidate count");
    for (size_t i = 0; i < e.candidates().size(); ++i) {
      const search::Candidate &a = e.candidates()[i], &b = again.candidates()[i];
      FUZZ_REQUIRE(a.index == b.index && a.generation == b.generation && a.origin == b.origin && a.arch == b.arch &&
                       a.flops_m == b.flops_m && a.params_m == b.params_m && a.evaluated == b.evaluated &&
                       a.fitness == b.fitness && a.seconds == b.seconds,
                   "candidate ", i, " does not read back the same");
    }
    e.top(3);
    e.best_by_generation();
    for (int k = 0; k < 6 && !e.done(); ++k) e.record(double(k % 3), 0.0);
    e.to_json();
  } catch (const Error&) {
  }
  return 0;
}
