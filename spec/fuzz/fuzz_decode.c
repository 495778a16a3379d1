/* libFuzzer target: core.decode, the JSON reader every DynamoDB answer goes through.
 * Contract: any bytes give a value or nil, reason, never a raise; what decodes encodes
 * again (core.encode), and that text decodes too. */
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    int top = lua_gettop(L), n, rc;
    fuzz_core_fn(L, "decode");
    lua_pushlstring(L, (const char *)data, size);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0, "decode raised: %s", lua_tostring(L, -1));
    if (lua_isnil(L, top + 1)) {
        /* a top-level null is nil alone; a failure is nil, reason */
        FUZZ_CHECK(n == 1 || (n == 2 && lua_type(L, top + 2) == LUA_TSTRING),
                   "decode gave nil with %d values", n);
        lua_settop(L, top);
        fuzz_done(L, top);
        return 0;
    }
    FUZZ_CHECK(n == 1, "decode returned %d values", n);
    fuzz_core_fn(L, "encode");
    lua_pushvalue(L, top + 1);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0, "encode raised: %s", lua_tostring(L, -1));
    FUZZ_CHECK(lua_type(L, top + 2) == LUA_TSTRING, "decoded value does not encode: %s",
               lua_tostring(L, top + 3));
    fuzz_core_fn(L, "decode");
    lua_pushvalue(L, top + 2);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0 && !lua_isnil(L, top + 3), "re-encoded text does not decode: %s",
               lua_tostring(L, -1));
    lua_settop(L, top);
    fuzz_done(L, top);
    return 0;
}
