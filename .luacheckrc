-- luacheck: the library, the specs and the examples (make check).
std = "max"
max_line_length = 110
read_globals = { "ngx", "jit" }
files["spec"] = { std = "+busted" }
exclude_files = { "spec/support/node", ".venv", "build" }
