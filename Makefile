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
  CXXFLAGS += -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS   += -fsanitize=address,undefined
  override BUILD := $(BUILD)-asan
else
  $(error MODE must be release, debug or asan)
endif

LIB_DIRS := kernels runtime nn detect data search
LIB_SRCS := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cpp $(d)/*/*.cpp))
CU_SRCS  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cu $(d)/*/*.cu))
CLI_SRCS := $(wildcard cli/*.cpp)
TEST_SRCS := $(wildcard tests/*.cpp tests/emu/*.cpp)
BENCH_SRCS := $(wildcard bench/*.cpp)

ifeq ($(CUDA),1)
  CXXFLAGS += -DDETNAS_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcudnn
  NVCCFLAGS := -std=c++17 -O2 $(CUDA_ARCH) -DDETNAS_CUDA=1 -I. -Xcompiler -fPIC,-Wall -MMD -MP
  LIB_OBJS := $(LIB_SRCS:%.cpp=$(BUILD)/%.o) $(CU_SRCS:%.cu=$(BUILD)/%.cu.o)
else
  LIB_OBJS := $(LIB_SRCS:%.cpp=$(BUILD)/%.o)
endif
CLI_OBJS   := $(CLI_SRCS:%.cpp=$(BUILD)/%.o)
TEST_OBJS  := $(TEST_SRCS:%.cpp=$(BUILD)/%.o)
BENCH_OBJS := $(BENCH_SRCS:%.cpp=$(BUILD)/%.o)

LIBA := $(BUILD)/libdetnas.a
# Objects depend on a stamp named after the compile flags, so changing a flag
# (MODE, CUDA, an added warning) rebuilds everything instead of mixing objects.
FLAGS_STAMP := $(BUILD)/.flags-$(shell echo '$(CXX) $(CXXFLAGS) $(NVCCFLAGS)' | md5sum | cut -c1-12)
$(FLAGS_STAMP):
	@mkdir -p $(@D)
	@rm -f $(BUILD)/.flags-*
	@touch $@

GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
CXXFLAGS += -DDETNAS_GIT_REV=\"$(GIT_REV)\" -DDETNAS_BUILD_FLAGS="\"MODE=$(MODE) CUDA=$(CUDA)\""

.PHONY: all lib test deps clean format lint config
all: lib
all: config detnas bench/bench

config:
	@echo "detnas: MODE=$(MODE) CUDA=$(CUDA)$(if $(filter 1,$(CUDA)), ($(CUDA_HOME), sm_90+PTX),) CXX=$(CXX) BUILD=$(BUILD) OpenMP+OpenBLAS"

lib: $(LIBA)

$(LIBA): $(LIB_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^

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

test: config $(BUILD)/tests/run_tests $(BUILD)/bin/detnas
	OMP_WAIT_POLICY=passive $(BUILD)/tests/run_tests $(TEST_ARGS)

$(BUILD)/%.o: %.cpp $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

DEB_PKGS := g++ make libopenblas-dev libturbojpeg0-dev libsimdjson-dev libcli11-dev doctest-dev zlib1g-dev
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "deps: all Debian packages present"; fi

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

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')
lint:
	clang-format --dry-run --Werror $$(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')

clean:
	rm -rf build build-* detnas bench/bench

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) $(EMU_OBJS:.o=.d)
