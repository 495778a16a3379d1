# make bench: the benchmark suite (spec/bench/run.lua; issue 9). Not a test: it prints a
# table and writes the raw numbers to build/bench/results.json (the table to table.md).
#   make bench                    every section (15 to 25 minutes on 2 cores)
#   make bench-overhead           with_item against a fixed-response nginx: this module,
#                                 boto3, the JS SDK, a bare libcurl loop, wrk (+ connections)
#   make bench-module             the module's own CPU per with_item, no network (in-process
#                                 answers; spec/bench/profile.lua, also for callgrind)
#   make bench-ngx                the module inside nginx over cosockets, driven by wrk, beside
#                                 the libcurl path in every round
#   make bench-ngx-instructions   callgrind instructions per with_item inside nginx (net of the
#                                 inbound request) and on the libcurl path; BENCH_NGX_BASE=<dir>
#                                 adds another source tree (built for jit) for a before/after
#   make bench-memory             VmRSS after 1,000 / 10,000 / 100,000 operations
#   make bench-instructions       callgrind instructions per operation, compared with
#                                 spec/bench/instructions.json (BENCH_RECORD=1 rewrites it)
#   make bench-inflight           the multi-interface scheduler with 1/8/64/256 in flight
#   make bench-bigitem            with_item on 10 KB and 100 KB items against boto3 and the JS SDK
#   make bench-contention         8 processes on one hot item, moto and dynalite
#   make bench-allocations        allocations per with_item by source line (a Lua 5.4 host
#                                 with an allocation hook), and cachegrind's L1 and L2 misses
#                                 on the scheduler at 1 and 256 in flight; BENCH_ALLOC_BASE=<dir>
#                                 adds another source tree (built for 5.4) for a before/after
#   make bench-deps               the peers: boto3 (.venv) and the JS SDK (npm ci)
# BENCH_SECONDS (3) and BENCH_REPEAT (7) set the length of a run and the number of rounds.
# The driver runs under Lua 5.4 whatever LUA_VERSION says (LUA_PATH comes from the Makefile).
BENCH_LUA = env "LUA_CPATH=$(CURDIR)/build/5.4/?.so;;" lua5.4 spec/bench/run.lua
BENCH_BUILD = $(MAKE) -s build LUA_VERSION=5.4 && $(MAKE) -s build LUA_VERSION=jit

.PHONY: bench bench-deps bench-overhead bench-module bench-ngx bench-memory bench-instructions \
        bench-inflight bench-bigitem bench-contention bench-table bench-ngx-instructions \
        bench-allocations

bench-deps:
	@[ -x .venv/bin/python ] || sh spec/support/install-deps.sh
	@.venv/bin/pip install -q --disable-pip-version-check -r spec/bench/requirements.txt
	@if [ ! -f spec/bench/node/node_modules/.lock-stamp ] || \
	    ! cmp -s spec/bench/node/package-lock.json spec/bench/node/node_modules/.lock-stamp; then \
	  (cd spec/bench/node && npm ci --no-audit --no-fund --loglevel=error) && \
	  cp spec/bench/node/package-lock.json spec/bench/node/node_modules/.lock-stamp; fi

# contention runs last, with the local DynamoDB servers up; the others without them
bench: bench-deps
	@$(BENCH_BUILD)
	@$(BENCH_LUA) overhead module ngx memory instructions inflight bigitem
	@sh spec/support/with-servers.sh sh -c '$(BENCH_LUA) contention'

bench-overhead bench-module bench-ngx bench-memory bench-instructions bench-inflight \
bench-bigitem: bench-deps
	@$(BENCH_BUILD)
	@$(BENCH_LUA) $(patsubst bench-%,%,$@)

# not in `make bench` (valgrind makes it slow): run it for a change to either path
bench-ngx-instructions:
	@$(BENCH_BUILD)
	@$(BENCH_LUA) ngx_instructions

# not in `make bench` either (cachegrind): run it for a change to the engine's hot path
bench-allocations:
	@$(BENCH_BUILD)
	@$(BENCH_LUA) allocations

bench-contention: bench-deps
	@$(BENCH_BUILD)
	@sh spec/support/with-servers.sh sh -c '$(BENCH_LUA) contention'

bench-table:
	@$(BENCH_LUA) table
