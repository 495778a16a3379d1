-- Build with the Lua version named, since LuaRocks builds for 5.1 unless told (README, Install):
--   luarocks --lua-version 5.4 make rockspec/ddb-optimistic-0.1.0-1.rockspec
--   luarocks --lua-version 5.1 make rockspec/ddb-optimistic-0.1.0-1.rockspec \
--     LUA_INCDIR=/usr/include/luajit-2.1      (LuaJIT, OpenResty's included)
package = "ddb-optimistic"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null",
  tag = "v0.1.0",
}
description = {
  summary = "Amazon DynamoDB for Lua with optimistic locking that never loses or doubles an update",
  detailed = [[
    A C-backed DynamoDB client (SigV4, the JSON protocol, SDK-style retries) and
    ddb.optimistic: with_item(key, fn) reads an item, runs fn on a fresh copy and writes the
    result conditioned on a version attribute, re-running fn on conflicts, with write tokens
    that resolve lost answers exactly once. Transports for plain Lua (libcurl), OpenResty
    (cosockets) and coroutine-driven hosts.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  -- the command's argument parsing and help (Debian: lua-argparse)
  "argparse >= 0.7",
}
external_dependencies = {
  -- Debian keeps curl/curl.h under the multiarch include directory: check the library only.
  -- libcurl 7.80 or later (README, Install): the build stops with an #error on older headers.
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  ZLIB = { header = "zlib.h", library = "z" },
}
build = {
  type = "builtin",
  modules = {
    ["ddb.core"] = {
      sources = {
        "csrc/answer.c", "csrc/av/compare.c", "csrc/av/decimal.c", "csrc/av/doc.c",
        "csrc/av/marshal.c", "csrc/av/plan.c", "csrc/av/unmarshal.c", "csrc/buf.c",
        "csrc/compat.c",
        "csrc/curl_handle.c", "csrc/ddb_core.c", "csrc/exchange.c", "csrc/http1.c",
        "csrc/json.c", "csrc/jsonread.c", "csrc/number.c", "csrc/pool.c", "csrc/protocol.c",
        "csrc/retry.c", "csrc/signer.c", "csrc/sigv4.c", "csrc/state.c", "csrc/tokens.c",
        "csrc/transport_curl.c", "csrc/transport_multi.c", "csrc/utf8.c", "csrc/version.c",
        "csrc/wire.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "crypto", "z", "pthread" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)", "$(ZLIB_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(ZLIB_LIBDIR)" },
    },
    ["ddb"] = "lua/ddb/init.lua",
    ["ddb.client"] = "lua/ddb/client.lua",
    ["ddb.cli"] = "lua/ddb/cli.lua",
    ["ddb.config"] = "lua/ddb/config.lua",
    ["ddb.credentials"] = "lua/ddb/credentials/init.lua",
    ["ddb.credentials.container"] = "lua/ddb/credentials/container.lua",
    ["ddb.credentials.context"] = "lua/ddb/credentials/context.lua",
    ["ddb.credentials.creds"] = "lua/ddb/credentials/creds.lua",
    ["ddb.credentials.env"] = "lua/ddb/credentials/env.lua",
    ["ddb.credentials.imds"] = "lua/ddb/credentials/imds.lua",
    ["ddb.credentials.process"] = "lua/ddb/credentials/process.lua",
    ["ddb.credentials.profile"] = "lua/ddb/credentials/profile.lua",
    ["ddb.credentials.provider"] = "lua/ddb/credentials/provider.lua",
    ["ddb.credentials.sts"] = "lua/ddb/credentials/sts.lua",
    ["ddb.credentials.web_identity"] = "lua/ddb/credentials/web_identity.lua",
    ["ddb.credentials.xml"] = "lua/ddb/credentials/xml.lua",
    ["ddb.each"] = "lua/ddb/each.lua",
    ["ddb.errors"] = "lua/ddb/errors.lua",
    ["ddb.engine"] = "lua/ddb/engine/init.lua",
    ["ddb.engine.history"] = "lua/ddb/engine/history.lua",
    ["ddb.engine.keys"] = "lua/ddb/engine/keys.lua",
    ["ddb.engine.ops"] = "lua/ddb/engine/ops.lua",
    ["ddb.engine.pace"] = "lua/ddb/engine/pace.lua",
    ["ddb.engine.plan"] = "lua/ddb/engine/plan.lua",
    ["ddb.engine.rules"] = "lua/ddb/engine/rules.lua",
    ["ddb.engine.settings"] = "lua/ddb/engine/settings.lua",
    ["ddb.engine.state"] = "lua/ddb/engine/state.lua",
    ["ddb.optimistic"] = "lua/ddb/optimistic.lua",
    ["ddb.options"] = "lua/ddb/options.lua",
    ["ddb.runtime"] = "lua/ddb/runtime.lua",
    ["ddb.sandbox"] = "lua/ddb/sandbox.lua",
    ["ddb.scheduler"] = "lua/ddb/scheduler.lua",
    ["ddb.time"] = "lua/ddb/time.lua",
    ["ddb.utf8"] = "lua/ddb/utf8.lua",
    ["ddb.transact"] = "lua/ddb/transact.lua",
    ["ddb.transport.curl"] = "lua/ddb/transport/curl.lua",
    ["ddb.transport.ngx"] = "lua/ddb/transport/ngx.lua",
  },
  -- the command-line tool; LuaRocks puts a launcher in <tree>/bin that runs it with the
  -- interpreter the rock was built for and sets the module paths to the tree
  install = {
    bin = { ["ddb-optimistic"] = "bin/ddb-optimistic" },
  },
}
