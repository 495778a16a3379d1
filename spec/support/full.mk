# Reliability targets (included by the Makefile). Each sanitized build has its own
# directory under build/, so the normal build/<runtime> is never touched.
#   make asan          unit specs under AddressSanitizer + UndefinedBehaviorSanitizer
#                      (Lua 5.4 and LuaJIT; SAN_LUA_VERSIONS), leak checking on
#   make asan-integration   the integration specs the same way, servers started and stopped
#   make valgrind      unit specs under memcheck (Lua 5.4): no errors, no definite leaks
#   make fuzz          every libFuzzer target for FUZZ_SECONDS (60) each, on a working copy
#                      of the committed corpus; crashes land in build/fuzz/artifacts/
#   make fuzz-replay   every target over its committed corpus once (fast; for CI)
#   make fuzz-findings replays spec/fuzz/findings/: inputs of bugs not fixed yet
#   make fuzz-merge    folds what `make fuzz` found into spec/fuzz/corpus/ (minimised)
#   make soak          the contended-counter and server-down soaks (spec/soak, minutes)
#   make test-full     asan + asan-integration + valgrind + fuzz-replay + soak
# Needs: gcc with libasan/libubsan (build-essential), valgrind, and for the fuzz targets
# clang with libFuzzer: Debian packages clang and libclang-rt-14-dev (llvm for
# llvm-symbolizer, which names the frames of a fuzzer's report).

.PHONY: asan asan-integration valgrind fuzz fuzz-build fuzz-replay fuzz-findings fuzz-merge soak \
  test-full

SAN_CC ?= gcc
SAN_FLAGS ?= -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_LUA_VERSIONS ?= 5.4 jit
# What `make asan` runs: the unit specs by default.
SAN_SPECS ?= --run=unit
SAN_ASAN_OPTIONS = detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:halt_on_error=1
SAN_UBSAN_OPTIONS = print_stacktrace=1:halt_on_error=1
SAN_LUA_LIB_5.4 = /usr/lib/x86_64-linux-gnu/liblua5.4.a
SAN_LUA_LIB_5.3 = /usr/lib/x86_64-linux-gnu/liblua5.3.a
SAN_LUA_LIB_5.1 = /usr/lib/x86_64-linux-gnu/liblua5.1.a
SAN_LUA_LIB_jit = /usr/lib/x86_64-linux-gnu/libluajit-5.1.a
SAN_LUA_INC_jit = -I/usr/include/luajit-2.1

# The module, sanitized, in build/asan-<runtime>, plus a Lua host with the sanitizer
# runtime linked in (spec/fuzz/sanlua.c says why not LD_PRELOAD into the stock lua).
# $(1) = runtime
define DDB_SAN_BUILD
	@f="$(SAN_CC) $(SAN_FLAGS)"; if [ "$$(cat build/asan-$(1)/.flags 2>/dev/null)" != "$$f" ]; then \
	  rm -rf build/asan-$(1); mkdir -p build/asan-$(1); echo "$$f" > build/asan-$(1)/.flags; fi
	$(MAKE) --no-print-directory build LUA_VERSION=$(1) BUILD=build/asan-$(1) \
	  CC=$(SAN_CC) OPT="-O1 -g" CFLAGS="$(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)"
	$(SAN_CC) -O1 -g $(SAN_FLAGS) $(if $(SAN_LUA_INC_$(1)),$(SAN_LUA_INC_$(1)),-I/usr/include/lua$(1)) \
	  spec/fuzz/sanlua.c -o build/asan-$(1)/lua -Wl,-E \
	  -Wl,--whole-archive $(SAN_LUA_LIB_$(1)) -Wl,--no-whole-archive -lm -ldl
endef

# $(1) = runtime, $(2) = busted arguments. Worker processes that specs start run under the
# sanitized host too.
define DDB_SAN_RUN
	@echo "==> asan: $(2) (Lua $(1))"
	env ASAN_OPTIONS="$(SAN_ASAN_OPTIONS)" UBSAN_OPTIONS="$(SAN_UBSAN_OPTIONS)" \
	  LSAN_OPTIONS="suppressions=$(CURDIR)/spec/support/lsan.supp:print_suppressions=0" \
	  LUA_CPATH="$(CURDIR)/build/asan-$(1)/?.so;;" DDB_TEST_LUA="$(CURDIR)/build/asan-$(1)/lua" \
	  build/asan-$(1)/lua /usr/bin/busted --cpath="build/asan-$(1)/?.so" $(2)
endef

asan: $(addprefix asan-unit-,$(SAN_LUA_VERSIONS))

asan-build-%:
	$(call DDB_SAN_BUILD,$*)

asan-unit-%: asan-build-%
	$(call DDB_SAN_RUN,$*,$(SAN_SPECS))

# The servers come up once for every runtime.
asan-integration: $(addprefix asan-build-,$(SAN_LUA_VERSIONS))
	sh spec/support/with-servers.sh sh -c '$(foreach v,$(SAN_LUA_VERSIONS),$(MAKE) \
	  --no-print-directory asan-run-integration-$(v) &&) true'

# Without building, for a shell where spec/support/with-servers.sh set DDB_TEST_*.
asan-run-integration-%:
	$(call DDB_SAN_RUN,$*,--run=integration)

# ---- valgrind ----

VALGRIND_SPECS ?= --run=unit
VALGRIND_FLAGS = --tool=memcheck --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite --keep-debuginfo=yes \
  --track-origins=yes --num-callers=30 --suppressions=spec/support/valgrind.supp

# The stock interpreter runs busted (a Lua script) directly, so valgrind sees one process;
# specs that start children (the botocore vector generator) run them unwatched.
valgrind:
	$(MAKE) --no-print-directory build LUA_VERSION=5.4 BUILD=build/valgrind-5.4 OPT="-O1 -g"
	@echo "==> valgrind: $(VALGRIND_SPECS) (Lua 5.4)"
	env LUA_CPATH="$(CURDIR)/build/valgrind-5.4/?.so;;" \
	  valgrind $(VALGRIND_FLAGS) lua5.4 /usr/bin/busted --cpath="build/valgrind-5.4/?.so" \
	  $(VALGRIND_SPECS)

# ---- libFuzzer ----

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FUZZ_FLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
  -fno-sanitize-recover=undefined
FUZZ_TARGETS = response decode jsonread unmarshal error number config http1 history
FUZZ_DIR = build/fuzz
FUZZ_OBJS = $(patsubst csrc/%.c,$(FUZZ_DIR)/obj/%.o,$(SRCS))
FUZZ_BINS = $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))
FUZZ_ENV = ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$(FUZZ_DIR)/obj:
	mkdir -p $@

$(FUZZ_DIR)/obj/%.o: csrc/%.c $(HDRS) | $(FUZZ_DIR)/obj
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra $(FUZZ_FLAGS) \
	  -fsanitize=fuzzer-no-link -I/usr/include/lua5.4 -c $< -o $@

$(FUZZ_DIR)/fuzz_%: spec/fuzz/fuzz_%.c spec/fuzz/fuzz_lua.h $(FUZZ_OBJS)
	$(FUZZ_CC) -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra $(FUZZ_FLAGS) -fsanitize=fuzzer \
	  -I/usr/include/lua5.4 -Icsrc -DDDB_LUA_DIR='"$(CURDIR)/lua"' $< $(FUZZ_OBJS) \
	  -o $@ $(SAN_LUA_LIB_5.4) -lcurl -lcrypto -lcjson -lz -lpthread -lm -ldl

fuzz-build: $(FUZZ_BINS)

# Each target fuzzes a scratch copy of its committed corpus, so new inputs do not pile up in
# the work tree; `make fuzz-merge` keeps the ones that add coverage.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/artifacts/$$t; \
	  cp -n spec/fuzz/corpus/$$t/* $(FUZZ_DIR)/corpus/$$t/ 2>/dev/null || true; \
	  echo "==> fuzz $$t: $(FUZZ_SECONDS) s"; \
	  dict=spec/fuzz/dict/$$t.dict; [ -f $$dict ] || dict=spec/fuzz/dict/json.dict; \
	  $(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -dict=$$dict -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t/ $(FUZZ_ARGS) \
	    $(FUZZ_DIR)/corpus/$$t > $(FUZZ_DIR)/$$t.log 2>&1 || { tail -60 $(FUZZ_DIR)/$$t.log; \
	    echo "==> fuzz $$t: FAILED (log: $(FUZZ_DIR)/$$t.log)"; exit 1; }; \
	  grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss' \
	    $(FUZZ_DIR)/$$t.log | sed 's/^/    /'; \
	done

fuzz-replay: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  n=$$(ls spec/fuzz/corpus/$$t | wc -l); \
	  $(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$$t -runs=0 -timeout=10 spec/fuzz/corpus/$$t \
	    > $(FUZZ_DIR)/$$t.replay.log 2>&1 || { tail -60 $(FUZZ_DIR)/$$t.replay.log; \
	    echo "==> fuzz-replay $$t: FAILED"; exit 1; }; \
	  echo "==> fuzz-replay $$t: $$n inputs ok ($$(grep -o 'cov: [0-9]*' $(FUZZ_DIR)/$$t.replay.log | tail -1))"; \
	done

# Inputs that showed bugs not fixed yet (spec/fuzz/findings/<target>-<what>): each should
# pass once its fix is in, and then belongs in the corpus.
fuzz-findings: fuzz-build
	@for f in spec/fuzz/findings/*; do t=$${f##*/}; t=$${t%%-*}; \
	  if $(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$$t $$f > $(FUZZ_DIR)/finding.log 2>&1; then r=fixed; \
	  else r="still fails: $$(grep -m1 -E 'invariant failed|ERROR: AddressSanitizer|runtime error' \
	    $(FUZZ_DIR)/finding.log)"; fi; echo "==> $$f: $$r"; done

fuzz-merge: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_DIR)/fuzz_$$t -merge=1 spec/fuzz/corpus/$$t $(FUZZ_DIR)/corpus/$$t 2>&1 | tail -1; \
	done

# ---- soak ----

# Minutes of faults against both servers; SOAK_SCALE multiplies the work (1 = the default).
SOAK_SCALE ?= 1
soak: build
	env DDB_SOAK_SCALE=$(SOAK_SCALE) sh spec/support/with-servers.sh \
	  busted --lua=$(LUA_BIN) -o utfTerminal spec/soak

test-full: asan asan-integration valgrind fuzz-replay soak
