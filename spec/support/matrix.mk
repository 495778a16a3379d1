# The runtime matrix and the reference docs (included by the Makefile).
#   make test-matrix   build, unit and integration specs under every runtime of MATRIX;
#                      names the runtimes that are not installed, fails if any run fails
#                      (MATRIX_STRICT=1 also fails when a runtime is missing)
#   make docs          LDoc reference under build/docs (config.ld)

MATRIX ?= 5.4 5.3 5.1 jit
MATRIX_STRICT ?= 0
DOCS_DIR = build/docs

.PHONY: test-matrix docs

# The script runs in one shell so that it can keep per-runtime results; make hands it over
# in the environment. Counts come from spec/support/busted.sh (DDB_TEST_COUNTS).
define DDB_MATRIX_SH
set -u
make="$(MAKE)"
work=$$(mktemp -d "$${TMPDIR:-/tmp}/ddb-matrix.XXXXXX")
trap 'rm -rf "$$work"' EXIT
present=""; missing=""

# What a runtime needs: the interpreter, its headers, and busted's modules for it.
for v in $(MATRIX); do
  if [ "$$v" = jit ]; then bin=luajit; inc=/usr/include/luajit-2.1; pkgs="luajit2 libluajit2-5.1-dev"
  else bin=lua$$v; inc=/usr/include/lua$$v; pkgs="lua$$v liblua$$v-dev"; fi
  [ "$$v" = 5.1 ] && pkgs="lua5.1 liblua5.1-0-dev"
  why=""
  command -v "$$bin" >/dev/null 2>&1 || why="no $$bin interpreter"
  [ -z "$$why" ] && [ ! -f "$$inc/lua.h" ] && why="no headers in $$inc"
  [ -z "$$why" ] && ! "$$bin" -e 'require "busted.runner"' >/dev/null 2>&1 &&
    why="busted is not installed for $$bin (lua-busted)"
  if [ -n "$$why" ]; then
    missing="$$missing $$v"
    echo "$$why: Debian packages $$pkgs" > "$$work/missing-$$v"
    echo "==> runtime $$v: MISSING ($$why; install $$pkgs)"
  else
    present="$$present $$v"
  fi
done

# One stage: runs the command, records ok/FAILED and the busted counts it added.
stage() {
  v=$$1; what=$$2; shift 2
  DDB_TEST_COUNTS="$$work/counts-$$what-$$v"; export DDB_TEST_COUNTS
  : > "$$DDB_TEST_COUNTS"
  t0=$$(date +%s)
  echo "==> $$what ($$v)"
  if "$$@"; then r=ok; else r=FAILED; fi
  echo "$$r" > "$$work/result-$$what-$$v"
  echo "==> $$what ($$v): $$r ($$(( $$(date +%s) - t0 ))s)"
}

for v in $$present; do
  stage "$$v" build $$make -s build LUA_VERSION=$$v OPT="-O2 -g -Werror"
  if [ "$$(cat "$$work/result-build-$$v")" = ok ]; then
    stage "$$v" unit $$make -s test-unit LUA_VERSION=$$v
  fi
done

# The servers start once; every runtime whose build passed runs against them.
built=""
for v in $$present; do
  [ "$$(cat "$$work/result-build-$$v")" = ok ] && built="$$built $$v"
done
if [ -n "$$built" ]; then
  DDB_MATRIX_BUILT="$$built" DDB_MATRIX_WORK="$$work" DDB_MATRIX_MAKE="$$make" \
    sh spec/support/with-servers.sh sh -c '
      for v in $$DDB_MATRIX_BUILT; do
        DDB_TEST_COUNTS="$$DDB_MATRIX_WORK/counts-integration-$$v"; export DDB_TEST_COUNTS
        : > "$$DDB_TEST_COUNTS"
        echo "==> integration ($$v)"
        if $$DDB_MATRIX_MAKE -s integration-run LUA_VERSION=$$v; then r=ok; else r=FAILED; fi
        echo "$$r" > "$$DDB_MATRIX_WORK/result-integration-$$v"
        echo "==> integration ($$v): $$r"
      done
      exit 0' || echo "==> the test servers failed to start or stop"
fi

counts() {
  f="$$work/counts-$$1-$$2"
  if [ -s "$$f" ]; then
    awk '{p+=$$1; f+=$$2; s+=$$3} END {printf "%d passed, %d failed, %d skipped", p, f, s}' "$$f"
  fi
}
result() {
  if [ -f "$$work/result-$$1-$$2" ]; then cat "$$work/result-$$1-$$2"; else echo "not run"; fi
}

echo
echo "==> runtime matrix"
failed=0
for v in $(MATRIX); do
  if [ -f "$$work/missing-$$v" ]; then
    printf '  %-4s MISSING: %s\n' "$$v" "$$(cat "$$work/missing-$$v")"
    [ "$(MATRIX_STRICT)" = 1 ] && failed=1
    continue
  fi
  for what in build unit integration; do
    r=$$(result "$$what" "$$v")
    [ "$$r" = ok ] || failed=1
    c=$$(counts "$$what" "$$v")
    printf '  %-4s %-12s %-7s %s\n' "$$v" "$$what" "$$r" "$$c"
  done
done
if [ -n "$$missing" ]; then
  echo "==> not installed:$$missing (their specs did not run)"
fi
if [ "$$failed" -ne 0 ]; then echo "==> test-matrix: FAILED"; exit 1; fi
echo "==> test-matrix: every installed runtime passed"
endef
export DDB_MATRIX_SH

test-matrix:
	@sh -c "$$DDB_MATRIX_SH"

# LDoc reads the doc comments of lua/ddb (config.ld). Debian packages lua-ldoc and
# lua-discount: without discount, LDoc falls back to another processor (or plain text) and
# prints "using built-in markdown" or "falling back to text".
docs:
	@command -v ldoc >/dev/null 2>&1 || { echo "make docs needs ldoc (Debian package lua-ldoc)" >&2; exit 1; }
	@mkdir -p $(DOCS_DIR)
	@out=$$(ldoc -c config.ld -d $(DOCS_DIR) . 2>&1); status=$$?; echo "$$out"; \
	  if echo "$$out" | grep -q "falling back to text\|using built-in markdown"; then \
	    echo "make docs needs the discount markdown module for LDoc (Debian package lua-discount)" >&2; exit 1; fi; \
	  exit $$status
	@echo "reference documentation: $(DOCS_DIR)/index.html"
