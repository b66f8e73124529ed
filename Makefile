# detnas — plain Makefile. Sources are found by wildcard; objects go under $(BUILD)/.
#   make               build detnas, bench and the library (CUDA when nvcc is found)
#   make test          build and run the doctest suites
#   make deps          install the Debian packages the project needs (idempotent)
#   make CUDA=0        build without CUDA;  make MODE=asan test   ASan + UBSan
#   make BUILD=dir     use another object folder (parallel work trees)
.DEFAULT_GOAL := all
CUDA  ?= auto
MODE  ?= release
BUILD ?= build
NVCC  ?= nvcc
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90

ifeq ($(CUDA),auto)
  ifneq ($(shell command -v $(NVCC) 2>/dev/null),)
    CUDA := 1
  else
    CUDA := 0
  endif
endif
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC) 2>/dev/null))

CXX      ?= g++
CXXFLAGS := -std=c++17 -ffp-contract=off -Wall -Wextra -Wno-unused-parameter -fopenmp -I. -MMD -MP -fPIC
LDLIBS   := -fopenmp -lopenblas -lturbojpeg -lsimdjson -lz -lpthread
ifeq ($(MODE),release)
  CXXFLAGS += -O2 -march=native -g1
else ifeq ($(MODE),debug)
  CXXFLAGS += -O0 -g
else ifeq ($(MODE),asan)
  # -g1: the line tables that ASan and UBSan reports need (file:line per frame);
  # full -g compiles about 30% slower (cli/cmd_train.cpp: 70 s against 49 s).
  CXXFLAGS += -O1 -g1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS   += -fsanitize=address,undefined
  override BUILD := $(BUILD)-asan
  # The two convergence runs (hundreds of training steps each, 3.5 min under
  # ASan) run in the release suite only; the ops and training code they use run
  # under ASan in the shorter training tests.
  TEST_ARGS ?= -tce='*overfits two synthetic images*'
else
  $(error MODE must be release, debug or asan)
endif

# Open MPI (make deps): its include path only for the files that call MPI
# (runtime/dist.cpp, the emulated GPU's NCCL stand-in), its libraries for every
# link. A build without it stops here: scale-out is not optional.
MPI_CFLAGS := $(shell mpicxx --showme:compile 2>/dev/null)
MPI_LIBS := $(filter-out -lmpi_cxx,$(shell mpicxx --showme:link 2>/dev/null))
ifeq ($(MPI_LIBS),)
  ifneq ($(filter-out deps clean lint format,$(or $(MAKECMDGOALS),all)),)
    $(error Open MPI not found (no mpicxx): run `make deps`, which installs openmpi-bin and libopenmpi-dev)
  endif
endif
LDLIBS += $(MPI_LIBS)
# ONNX (make deps: libonnx-dev): only export/ includes its headers; every link gets the libraries.
LDLIBS += -lonnx -lonnx_proto -lprotobuf
%/runtime/dist.o %/tests/emu/gpu/nccl.o: CXXFLAGS += $(MPI_CFLAGS)

LIB_DIRS := core kernels runtime nn detect data search export api
LIB_SRCS := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cpp $(d)/*/*.cpp))
CU_SRCS  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cu $(d)/*/*.cu))
CLI_SRCS := $(wildcard cli/*.cpp)
TEST_SRCS := $(wildcard tests/*.cpp tests/emu/*.cpp)
BENCH_SRCS := $(wildcard bench/*.cpp)

ifeq ($(CUDA),1)
  CXXFLAGS += -DDETNAS_CUDA=1 -I$(CUDA_HOME)/include
  # cuBLAS is not linked: kernels/gemm_cublas.cu opens it on first use (its load costs ~210 MiB RSS)
  LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcudnn -lnccl -ldl
  NVCCFLAGS := -std=c++17 -O2 $(CUDA_ARCH) -DDETNAS_CUDA=1 -DDETNAS_CUDA_LIBDIR=\"$(CUDA_HOME)/lib64\" -I. \
    -Xcompiler -fPIC,-Wall -MMD -MP
  LIB_OBJS := $(LIB_SRCS:%.cpp=$(BUILD)/%.o) $(CU_SRCS:%.cu=$(BUILD)/%.cu.o)
else
  LIB_OBJS := $(LIB_SRCS:%.cpp=$(BUILD)/%.o)
endif
CLI_OBJS   := $(CLI_SRCS:%.cpp=$(BUILD)/%.o)
TEST_OBJS  := $(TEST_SRCS:%.cpp=$(BUILD)/%.o)
BENCH_OBJS := $(BENCH_SRCS:%.cpp=$(BUILD)/%.o)

LIBA := $(BUILD)/libdetnas.a
LIBSO := $(BUILD)/libdetnas.so
# Objects depend on a stamp named after the compile flags, so changing a flag
# (MODE, CUDA, an added warning) rebuilds everything instead of mixing objects.
FLAGS_STAMP := $(BUILD)/.flags-$(shell echo '$(CXX) $(CXXFLAGS) $(NVCCFLAGS)' | md5sum | cut -c1-12)
$(FLAGS_STAMP):
	@mkdir -p $(@D)
	@rm -f $(BUILD)/.flags-*
	@touch $@

GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
CXXFLAGS += -DDETNAS_GIT_REV=\"$(GIT_REV)\" -DDETNAS_BUILD_FLAGS="\"MODE=$(MODE) CUDA=$(CUDA)\""
# The two objects that print the revision are rebuilt when HEAD moves (the flags
# stamp above leaves the revision out so a commit does not rebuild everything).
REV_STAMP := $(BUILD)/.rev-$(GIT_REV)
$(REV_STAMP):
	@mkdir -p $(@D)
	@rm -f $(BUILD)/.rev-*
	@touch $@
$(BUILD)/bench/main.o $(BUILD)/api/runtime.o: $(REV_STAMP)

.PHONY: all lib test deps clean format lint config
all: lib
all: config detnas bench/bench

config:
	@echo "detnas: MODE=$(MODE) CUDA=$(CUDA)$(if $(filter 1,$(CUDA)), ($(CUDA_HOME), sm_90+PTX),) CXX=$(CXX) BUILD=$(BUILD) OpenMP+OpenBLAS"

lib: $(LIBA) $(LIBSO)

$(LIBA): $(LIB_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^

$(LIBSO): $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CXX) -shared -Wl,-soname,libdetnas.so -o $@ $^ $(LDLIBS)

detnas: $(BUILD)/bin/detnas
	@cp $< $@

# The bench sources and RESULTS.md live in bench/, so the binary is bench/bench
# (a file ./bench cannot sit beside the folder bench/).
bench/bench: $(BUILD)/bin/bench
	@cp $< $@

$(BUILD)/bin/detnas: $(CLI_OBJS) $(LIBA)
	@mkdir -p $(@D)
	$(CXX) -o $@ $(CLI_OBJS) $(LIBA) $(LDLIBS)

$(BUILD)/bin/bench: $(BENCH_OBJS) $(LIBA)
	@mkdir -p $(@D)
	$(CXX) -o $@ $(BENCH_OBJS) $(LIBA) $(LDLIBS)

# CPU SIMT emulator (tests/emu/README.md): every .cu source (except cuBLAS/cuDNN
# wrappers) and the emulator's own test kernels are also compiled by the host
# compiler as C++ against tests/emu/emu.h and linked into the test binary, with or
# without CUDA; postprocess.sh maps `extern __shared__` to the per-block buffer.
EMU_CU_SRCS := $(filter-out %_cublas.cu %_cudnn.cu,$(CU_SRCS)) $(wildcard tests/emu/*.cu)
EMU_OBJS := $(EMU_CU_SRCS:%.cu=$(BUILD)/emu/%.o)
EMU_CXXFLAGS := $(filter-out -DDETNAS_CUDA=1 -I$(CUDA_HOME)/include,$(CXXFLAGS)) -DDETNAS_EMU=1 \
  -Itests/emu/include -include tests/emu/emu.h

$(BUILD)/tests/run_tests: $(TEST_OBJS) $(EMU_OBJS) $(LIBA)
	$(CXX) -o $@ $(TEST_OBJS) $(EMU_OBJS) $(LIBA) $(LDLIBS)

$(BUILD)/emu/%.o: %.cu tests/emu/postprocess.sh $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CXX) $(EMU_CXXFLAGS) -MF $(@:.o=.d) -MT $@ -x c++ -c $< -o $@.tmp
	sh tests/emu/postprocess.sh $@.tmp $@

test: config $(BUILD)/tests/run_tests $(BUILD)/bin/detnas examples-run
	OMP_WAIT_POLICY=passive $(BUILD)/tests/run_tests $(TEST_ARGS)
	$(if $(EG_IN_TEST),DETNAS_REQUIRE_CUDA=1 OMP_WAIT_POLICY=passive $(EG)/tests/run_tests -tc='cuda*',@echo "emulated-GPU cuda suite: not run under MODE=asan (make test-emugpu)")
	$(if $(EG_IN_TEST),$(EG_BENCH_CHECK),@true)

$(BUILD)/%.o: %.cpp $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# --- embedding: make install PREFIX=..., make examples / examples-run -------------
# Public headers api/*.h go to PREFIX/include/detnas/; the internal headers they
# include keep the repo layout under PREFIX/include/detnas/internal/ (so their
# "runtime/tensor.h" includes resolve); libdetnas.{a,so} to PREFIX/lib and
# detnas.pc (shared library, rpath set) + detnas-static.pc (libdetnas.a and its
# dependencies) to PREFIX/lib/pkgconfig. examples-run installs to $(BUILD)/prefix,
# builds examples/*.cpp with `pkg-config --cflags --libs detnas` only, checks
# that every public header compiles alone, and runs the examples.
PREFIX ?= /usr/local
EX_PREFIX := $(abspath $(BUILD))/prefix
PUB_HDRS := $(wildcard api/*.h)
INT_HDRS := $(foreach d,$(filter-out api,$(LIB_DIRS)),$(wildcard $(d)/*.h $(d)/*.cuh))
EX_SRCS := $(wildcard examples/*.cpp)
EX_BINS := $(EX_SRCS:examples/%.cpp=$(BUILD)/examples/%)
PC_LIBS_PRIVATE := $(filter-out -fsanitize=%,$(LDLIBS))
PC_CFLAGS_EXTRA := $(if $(filter 1,$(CUDA)),-I$(CUDA_HOME)/include,)
EX_SANITIZE := $(filter -fsanitize=%,$(LDLIBS))

# $(1): destination folder, $(2): the prefix recorded in detnas.pc (without DESTDIR)
define install_to
	@mkdir -p $(1)/lib/pkgconfig $(1)/include/detnas/internal
	install -m 644 $(LIBA) $(1)/lib/libdetnas.a
	install -m 755 $(LIBSO) $(1)/lib/libdetnas.so
	install -m 644 $(PUB_HDRS) $(1)/include/detnas/
	@for h in $(INT_HDRS); do install -D -m 644 $$h $(1)/include/detnas/internal/$$h || exit 1; done
	@printf '%s\n' 'prefix=$(2)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: detnas' 'Description: DetNAS detection backbone search engine: tensors, autograd, supernet, detectors, search' \
	  'Version: 0.1.0+$(GIT_REV)' \
	  'Cflags: -I$${includedir} -I$${includedir}/detnas/internal $(PC_CFLAGS_EXTRA)' \
	  'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -ldetnas' \
	  'Libs.private: $(PC_LIBS_PRIVATE)' > $(1)/lib/pkgconfig/detnas.pc
	@sed -e 's|^Name: detnas|Name: detnas-static|' -e 's|^Libs: .*|Libs: $${libdir}/libdetnas.a $(PC_LIBS_PRIVATE)|' \
	  -e '/^Libs.private/d' $(1)/lib/pkgconfig/detnas.pc > $(1)/lib/pkgconfig/detnas-static.pc
	@echo "installed libdetnas, $(words $(PUB_HDRS)) public + $(words $(INT_HDRS)) internal headers, detnas.pc and detnas-static.pc in $(1)"
endef

.PHONY: install examples examples-run
install: lib
	$(call install_to,$(DESTDIR)$(PREFIX),$(PREFIX))

$(EX_PREFIX)/lib/pkgconfig/detnas.pc: $(LIBA) $(LIBSO) $(PUB_HDRS) $(INT_HDRS) Makefile
	$(call install_to,$(EX_PREFIX),$(EX_PREFIX))

$(BUILD)/examples/%: examples/%.cpp $(EX_PREFIX)/lib/pkgconfig/detnas.pc
	@mkdir -p $(@D)
	$(CXX) -O1 -g $(EX_SANITIZE) -o $@ $< $$(PKG_CONFIG_PATH=$(EX_PREFIX)/lib/pkgconfig pkg-config --cflags --libs detnas)

examples: $(EX_BINS)
	@for h in $(notdir $(PUB_HDRS)); do \
	  $(CXX) -fsyntax-only -x c++ $$(PKG_CONFIG_PATH=$(EX_PREFIX)/lib/pkgconfig pkg-config --cflags detnas) \
	    -include detnas/$$h /dev/null || { echo "public header detnas/$$h does not compile alone"; exit 1; }; \
	done; echo "examples: $(words $(PUB_HDRS)) public headers compile alone"
	$(CXX) -O1 $(EX_SANITIZE) -o $(BUILD)/examples/static_link_check examples/search_custom_fitness.cpp \
	  $$(PKG_CONFIG_PATH=$(EX_PREFIX)/lib/pkgconfig pkg-config --cflags --libs detnas-static)

examples-run: examples
	@rm -rf $(BUILD)/examples/run && mkdir -p $(BUILD)/examples/run
	OMP_WAIT_POLICY=passive $(BUILD)/examples/train_tiny $(BUILD)/examples/run
	OMP_WAIT_POLICY=passive $(BUILD)/examples/detect_image $(BUILD)/examples/run/model $(BUILD)/examples/run/sample.jpg $(BUILD)/examples/run/detections.jpg
	$(if $(wildcard examples/search_custom_fitness.cpp),OMP_WAIT_POLICY=passive $(BUILD)/examples/search_custom_fitness)

DEB_PKGS := g++ make openmpi-bin libopenmpi-dev libopenblas-dev libturbojpeg0-dev libsimdjson-dev libcli11-dev doctest-dev zlib1g-dev pkg-config \
  clang clang-format libclang-rt-14-dev libomp-dev libonnx-dev python3-venv
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "deps: all Debian packages present"; fi
	@# Test-only: ONNX Runtime (not in Debian) from PyPI into .venv, for tests/onnx_ort_check.py.
	@if .venv/bin/python -c 'import onnxruntime, numpy' 2>/dev/null; then echo "deps: .venv has onnxruntime"; \
	else echo "deps: creating .venv with onnxruntime and numpy (test-only, from PyPI)"; \
	  /usr/bin/python3 -m venv .venv && .venv/bin/pip install -q onnxruntime numpy \
	  || echo "deps: WARNING: no onnxruntime in .venv; the ONNX Runtime tests will be skipped"; fi

# --- CUDA checks -------------------------------------------------------------------
# cuda-check: nvcc -Xptxas -v over every .cu source, one line per kernel with its
# registers, static shared memory, stack frame and spills (needs nvcc, no GPU);
# fails when a kernel has a stack frame or spills (tests/cuda_check.sh).
# test-cuda: the `cuda` doctest suite (every CUDA op against its CPU op on a real
# GPU) with DETNAS_REQUIRE_CUDA=1, so a machine without a usable GPU fails it
# instead of skipping.
.PHONY: cuda-check test-cuda
cuda-check:
	@command -v $(NVCC) >/dev/null 2>&1 || { echo "cuda-check: $(NVCC) not found"; exit 1; }
	@sh tests/cuda_check.sh "$(NVCC) -std=c++17 -O2 $(CUDA_ARCH) -DDETNAS_CUDA=1 -I." $(CU_SRCS)

test-cuda: config $(BUILD)/tests/run_tests
	DETNAS_REQUIRE_CUDA=1 OMP_WAIT_POLICY=passive $(BUILD)/tests/run_tests -tc='cuda:*' $(TEST_ARGS)

# --- emulated-GPU build: make emugpu / make test-emugpu ---------------------------
# The whole library compiled with DETNAS_CUDA=1 against stub toolkit headers of our
# own (tests/emu/gpu/include) instead of the CUDA toolkit, into $(BUILD)/emugpu/:
# every .cu source, cuBLAS/cuDNN wrappers included, is compiled by the host
# compiler through the SIMT emulator with its namespace kept (the library calls
# it); device memory is registered host memory and cuBLAS/cuDNN are CPU
# implementations of the calls we make (tests/emu/gpu/*.cpp, tests/emu/README.md).
# Never uses nvcc, so it works with CUDA=0 or without a toolkit. test-emugpu runs
# the `cuda` suite with DETNAS_REQUIRE_CUDA=1 (nothing skipped); emugpu also
# builds the CLI of this configuration, $(BUILD)/emugpu/bin/detnas.
EG := $(BUILD)/emugpu
EG_COMMA := ,
EG_CXXFLAGS := $(filter-out -DDETNAS_CUDA=1 -I$(CUDA_HOME)/include -DDETNAS_BUILD_FLAGS=% CUDA=%,$(CXXFLAGS)) \
  -DDETNAS_BUILD_FLAGS="\"MODE=$(MODE) CUDA=emulated\"" \
  -DDETNAS_CUDA=1 -DDETNAS_EMU_GPU=1 -DDETNAS_EMU_KEEP_NAMESPACE=1 -Itests/emu/gpu/include
EG_LDLIBS := $(filter-out -L$(CUDA_HOME)/lib64 -Wl$(EG_COMMA)-rpath$(EG_COMMA)$(CUDA_HOME)/lib64 -lcudart -lcudnn -lnccl -ldl,$(LDLIBS))
EG_STAMP := $(EG)/.flags-$(shell echo '$(CXX) $(filter-out -DDETNAS_GIT_REV=%,$(EG_CXXFLAGS))' | md5sum | cut -c1-12)
EG_LIB_OBJS := $(LIB_SRCS:%.cpp=$(EG)/%.o) $(CU_SRCS:%.cu=$(EG)/%.cu.o)
EG_RT_OBJS := $(patsubst %.cpp,$(EG)/%.o,tests/emu/emu.cpp tests/emu/fiber.cpp \
  $(filter-out tests/emu/gpu/test_%,$(wildcard tests/emu/gpu/*.cpp)))
EG_TEST_OBJS := $(patsubst %.cpp,$(EG)/%.o,tests/main.cpp tests/golden.cpp tests/test_util.cpp \
  $(wildcard tests/test_cuda*.cpp tests/emu/gpu/test_*.cpp))
EG_CLI_OBJS := $(CLI_SRCS:%.cpp=$(EG)/%.o)
EG_BENCH_OBJS := $(BENCH_SRCS:%.cpp=$(EG)/%.o)
EG_LIBA := $(EG)/libdetnas.a

$(EG_STAMP):
	@mkdir -p $(@D)
	@rm -f $(EG)/.flags-*
	@touch $@

$(EG)/%.o: %.cpp $(EG_STAMP)
	@mkdir -p $(@D)
	$(CXX) $(EG_CXXFLAGS) -c $< -o $@

$(EG)/%.cu.o: %.cu tests/emu/postprocess.sh $(EG_STAMP)
	@mkdir -p $(@D)
	$(CXX) $(EG_CXXFLAGS) -DDETNAS_EMU=1 -include tests/emu/emu.h -MF $(@:.o=.d) -MT $@ -x c++ -c $< -o $@.tmp
	sh tests/emu/postprocess.sh $@.tmp $@

$(EG)/api/runtime.o: $(REV_STAMP)
$(EG)/runtime/dist.o $(EG)/tests/emu/gpu/nccl.o: EG_CXXFLAGS += $(MPI_CFLAGS)

$(EG_LIBA): $(EG_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(EG)/tests/run_tests: $(EG_TEST_OBJS) $(EG_RT_OBJS) $(EG_LIBA)
	$(CXX) -o $@ $(EG_TEST_OBJS) $(EG_RT_OBJS) $(EG_LIBA) $(EG_LDLIBS)

$(EG)/bin/detnas: $(EG_CLI_OBJS) $(EG_RT_OBJS) $(EG_LIBA)
	@mkdir -p $(@D)
	$(CXX) -o $@ $(EG_CLI_OBJS) $(EG_RT_OBJS) $(EG_LIBA) $(EG_LDLIBS)

# bench of this configuration: `--cuda` validates every CUDA entry against the CPU
# on the emulated GPU (its times are the emulator's, not a GPU's).
$(EG)/bin/bench: $(EG_BENCH_OBJS) $(EG_RT_OBJS) $(EG_LIBA)
	@mkdir -p $(@D)
	$(CXX) -o $@ $(EG_BENCH_OBJS) $(EG_RT_OBJS) $(EG_LIBA) $(EG_LDLIBS)

$(EG)/bench/main.o: $(REV_STAMP)

.PHONY: emugpu test-emugpu
emugpu: $(EG)/tests/run_tests $(EG)/bin/detnas $(EG)/bin/bench

# make test also runs it (about 2.5 min of build + 25 s on 2 quiet cores), with
# CUDA=0 too; not under MODE=asan (a second ASan build of the whole library). The
# CLI is built too: the cuda suite runs the commands on the device through it.
EG_IN_TEST := $(if $(filter asan,$(MODE)),,$(EG)/tests/run_tests $(EG)/bin/detnas $(EG)/bin/bench)
test: $(EG_IN_TEST)

# bench --cuda on the emulated GPU: one entry of every CUDA family at small shapes
# (the emulator is far too slow for all of them), each validated against the CPU
# kernel; exits non-zero on a validation failure. About 45 s.
EG_BENCH_FILTER := cuda/300M@320/stage4/(dw_k3s1|dw_k5s2|pw|shuffle|split_even_odd|concat|relu|add|bn)/|retina@320/(P7/conv3x3|smooth_l1|focal)|fpn@320/(upsample_P5toP4|roi_align)|cuda/nms/1000|batched_nms
EG_BENCH_CHECK := OMP_WAIT_POLICY=passive $(EG)/bin/bench --cuda --budget 0 --filter '$(EG_BENCH_FILTER)'

test-emugpu: emugpu
	DETNAS_REQUIRE_CUDA=1 OMP_WAIT_POLICY=passive $(EG)/tests/run_tests -tc='cuda*' $(TEST_ARGS)
	$(EG_BENCH_CHECK)

-include $(EG_LIB_OBJS:.o=.d) $(EG_RT_OBJS:.o=.d) $(EG_TEST_OBJS:.o=.d) $(EG_CLI_OBJS:.o=.d) $(EG_BENCH_OBJS:.o=.d)

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')
lint:
	clang-format --dry-run --Werror $$(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')

clean:
	rm -rf build build-* detnas bench/bench

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) $(EMU_OBJS:.o=.d)

# --- fuzzing (make fuzz / fuzz-ci) ---
# libFuzzer targets fuzz/fuzz_<name>.cpp (fuzz/README.md), one per parser of
# outside input, linked with clang's -fsanitize=fuzzer,address,undefined against
# the library sources they need, compiled by clang with
# -fsanitize=fuzzer-no-link,address,undefined into $(FUZZ_BUILD)/ (CPU only, no
# DETNAS_CUDA). `make fuzz` runs each target for FUZZ_SECONDS (default 180), one
# at a time, from its seeds fuzz/corpus/<name>/ copied into a scratch corpus
# $(FUZZ_BUILD)/corpus/<name>/. `make fuzz-ci` first runs every saved input of
# fuzz/regressions/*/ through every target, then fuzzes each target for
# FUZZ_SECONDS (default 20 there). Both print one summary line per target and
# exit non-zero on any finding (crash, sanitizer report, leak, timeout,
# out-of-memory); the inputs land in $(FUZZ_BUILD)/findings/<name>/ and the logs
# in $(FUZZ_BUILD)/logs/. FUZZ=name[,name...] restricts both to some targets.
FUZZ_CXX ?= clang++-14
FUZZ_BUILD := build-fuzz
FUZZ_SECONDS ?= 180
FUZZ_CI_SECONDS := $(if $(filter command line environment,$(origin FUZZ_SECONDS)),$(FUZZ_SECONDS),20)
FUZZ_ALL := $(patsubst fuzz/fuzz_%.cpp,%,$(wildcard fuzz/fuzz_*.cpp))
FUZZ ?= $(FUZZ_ALL)
FUZZ_COMMA := ,
FUZZ_RUN := $(subst $(FUZZ_COMMA), ,$(FUZZ))
# -max_len per target: bytes a useful input needs (seeds included), not more.
FUZZ_MAX_LEN_arch := 512
FUZZ_MAX_LEN_checkpoint := 4096
FUZZ_MAX_LEN_coco_instances := 8192
FUZZ_MAX_LEN_coco_results := 8192
FUZZ_MAX_LEN_image := 16384
FUZZ_MAX_LEN_image_folder := 16384
FUZZ_MAX_LEN_safetensors := 4096
FUZZ_MAX_LEN_search_state := 8192
FUZZ_LIB_SRCS := data/coco.cpp data/coco_json.cpp data/coco_results.cpp data/coco_eval.cpp data/json_writer.cpp \
  data/image.cpp data/image_folder.cpp data/transforms.cpp nn/safetensors.cpp nn/checkpoint.cpp nn/module.cpp \
  nn/optimizer.cpp nn/space.cpp search/evolution.cpp search/cost_model.cpp search/path_sampler.cpp \
  runtime/tensor.cpp runtime/fs.cpp runtime/allocator.cpp runtime/device_allocator.cpp runtime/device.cpp \
  core/log.cpp core/profile.cpp runtime/autograd.cpp runtime/ops_optim.cpp runtime/backend.cpp runtime/backend_cpu.cpp \
  runtime/dist.cpp runtime/dist_nccl.cpp runtime/threads.cpp \
  $(wildcard kernels/*_cpu.cpp) \
  $(wildcard runtime/fault.cpp)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CXXFLAGS := -std=c++17 -O1 -gline-tables-only -ffp-contract=off -Wall -Wextra -Wno-unused-parameter -fopenmp -I. -MMD -MP \
  $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LDLIBS := -fsanitize=fuzzer $(FUZZ_SAN) -fopenmp -lopenblas -lturbojpeg -lsimdjson -lz -lpthread $(MPI_LIBS)
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.cpp=$(FUZZ_BUILD)/%.o)
FUZZ_LIBA := $(FUZZ_BUILD)/libdetnas_fuzz.a
FUZZ_BINS := $(FUZZ_ALL:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_STAMP := $(FUZZ_BUILD)/.flags-$(shell echo '$(FUZZ_CXX) $(FUZZ_CXXFLAGS)' | md5sum | cut -c1-12)

$(FUZZ_STAMP):
	@mkdir -p $(@D)
	@rm -f $(FUZZ_BUILD)/.flags-*
	@touch $@

$(FUZZ_BUILD)/%.o: %.cpp $(FUZZ_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -c $< -o $@

$(FUZZ_BUILD)/runtime/dist.o: FUZZ_CXXFLAGS += $(MPI_CFLAGS)

$(FUZZ_LIBA): $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_LIBA)
	$(FUZZ_CXX) -o $@ $< $(FUZZ_LIBA) $(FUZZ_LDLIBS)
.SECONDARY: $(FUZZ_ALL:%=$(FUZZ_BUILD)/fuzz/fuzz_%.o)

.PHONY: fuzz-build fuzz fuzz-ci fuzz-seeds
fuzz-build: $(FUZZ_BINS)

# Rewrites the seed corpora fuzz/corpus/*/ (fuzz/make_seeds.cpp; they are kept in the repo).
$(FUZZ_BUILD)/make_seeds: $(FUZZ_BUILD)/fuzz/make_seeds.o $(FUZZ_LIBA)
	$(FUZZ_CXX) -o $@ $< $(FUZZ_LIBA) $(FUZZ_SAN) -fopenmp -lopenblas -lturbojpeg -lsimdjson -lz -lpthread $(MPI_LIBS)
fuzz-seeds: $(FUZZ_BUILD)/make_seeds
	$(FUZZ_BUILD)/make_seeds fuzz/corpus

fuzz: fuzz-build
	@sh fuzz/run.sh fuzz $(FUZZ_SECONDS) $(FUZZ_BUILD) $(foreach t,$(FUZZ_RUN),$(t):$(FUZZ_MAX_LEN_$(t)))

fuzz-ci: fuzz-build
	@sh fuzz/run.sh ci $(FUZZ_CI_SECONDS) $(FUZZ_BUILD) $(foreach t,$(FUZZ_RUN),$(t):$(FUZZ_MAX_LEN_$(t)))

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_ALL:%=$(FUZZ_BUILD)/fuzz/fuzz_%.d) $(FUZZ_BUILD)/fuzz/make_seeds.d
# --- end fuzzing ---
