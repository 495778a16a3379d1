# ddb-optimistic: build, check, test. `make LUA_VERSION=5.4|5.3|5.1|jit`.
LUA_VERSION ?= 5.4
ifeq ($(LUA_VERSION),jit)
  LUA_INC ?= -I/usr/include/luajit-2.1
  LUA_BIN ?= luajit
else
  LUA_INC ?= -I/usr/include/lua$(LUA_VERSION)
  LUA_BIN ?= lua$(LUA_VERSION)
endif

CC ?= cc
OPT ?= -O2 -g
CFLAGS_ALL = -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -fPIC -fvisibility=hidden \
             $(OPT) $(LUA_INC) $(CFLAGS)
# libcurl 7.80 or later (README, Install; csrc/transport_curl.c refuses older headers)
LIBS = -lcurl -lcrypto -lz -lpthread
BUILD = build/$(LUA_VERSION)
SRCS = $(wildcard csrc/*.c csrc/av/*.c)
HDRS = $(wildcard csrc/*.h csrc/av/*.h)
OBJS = $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(SRCS))
CORE = $(BUILD)/ddb/core.so

export LUA_PATH := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;
export DDB_TEST_LUA := $(LUA_BIN)

.PHONY: all build deps check test test-unit test-integration integration-run demo sim clean

all: build
build: $(CORE)

$(BUILD)/obj/%.o: csrc/%.c $(HDRS) | $(BUILD)/obj
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(CORE): $(OBJS) | $(BUILD)/ddb
	$(CC) -shared $(OBJS) -o $@ $(LDFLAGS) $(LIBS)

$(BUILD)/obj $(BUILD)/ddb:
	mkdir -p $@

# Installs what is missing (Debian packages, the Python venv, the pinned npm packages).
deps:
	sh spec/support/install-deps.sh

check:
	luacheck --quiet lua spec examples bin/ddb-optimistic

test-unit: build
	sh spec/support/busted.sh --lua=$(LUA_BIN) --run=unit

test-integration: build
	sh spec/support/with-servers.sh busted --lua=$(LUA_BIN) --run=integration

# The integration specs alone, for a shell where spec/support/with-servers.sh set DDB_TEST_*.
integration-run: build
	sh spec/support/busted.sh --lua=$(LUA_BIN) --run=integration

# What CI runs: dependencies, build, lint, then every stage on Lua 5.4 and LuaJIT.
test: deps
	sh spec/support/run-tests.sh

# Starts local DynamoDB servers, runs the demo against dynalite, stops them.
demo: deps build
	sh spec/support/with-servers.sh sh -c 'AWS_ENDPOINT_URL_DYNAMODB=$$DDB_TEST_DYNALITE_URL \
	  AWS_REGION=$$DDB_TEST_REGION AWS_ACCESS_KEY_ID=$$DDB_TEST_ACCESS_KEY \
	  AWS_SECRET_ACCESS_KEY=$$DDB_TEST_SECRET_KEY $(LUA_BIN) examples/demo.lua'

# The deterministic simulator: SEEDS seeds from START (a seed that breaks a promise is printed
# with the command that replays it); make test runs a fixed batch (spec/unit/sim_spec.lua).
SEEDS ?= 2000
START ?= 1
sim: build
	$(LUA_BIN) spec/sim/run.lua --seeds $(SEEDS) --start $(START) $(if $(SCENARIO),--scenario $(SCENARIO))

clean:
	rm -rf build

# Slower targets (sanitizers, valgrind, fuzzing, soaks, the runtime matrix, benchmarks, docs)
# live in their own files; `make test-full` runs the reliability set.
-include spec/support/full.mk
-include spec/support/matrix.mk
-include spec/support/bench.mk
