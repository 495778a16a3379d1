/* libFuzzer target: AttributeValues to Lua (core.unmarshal_item / core.unmarshal) on
 * whatever JSON decodes to, with item_size and ddb_av_equal on the same data. A raise must be
 * the reader's "malformed AttributeValue"; an item that reads and marshals back must read
 * and marshal back once more to equal AttributeValues (conversion is stable after one
 * normalisation). */
#include "fuzz_lua.h"

static const char *const unmarshal_errors[] = {"malformed AttributeValue", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    int top = lua_gettop(L), n, rc, t, m1;
    fuzz_core_fn(L, "decode");
    lua_pushlstring(L, (const char *)data, size);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0, "decode raised: %s", lua_tostring(L, -1));
    if (lua_type(L, top + 1) != LUA_TTABLE) {
        lua_settop(L, top);
        fuzz_done(L, top);
        return 0;
    }
    lua_settop(L, top + 1);
    t = top + 1;

    fuzz_core_fn(L, "item_size");
    lua_pushvalue(L, t);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0 && lua_type(L, -1) == LUA_TNUMBER, "item_size: %s", lua_tostring(L, -1));
    lua_settop(L, t);

    fuzz_core_fn(L, "av_equal");
    lua_pushvalue(L, t);
    lua_pushvalue(L, t);
    rc = fuzz_pcall(L, 2, &n);
    FUZZ_CHECK(rc == 0 && lua_type(L, -1) == LUA_TBOOLEAN, "av_equal: %s", lua_tostring(L, -1));
    lua_settop(L, t);

    fuzz_core_fn(L, "unmarshal");
    lua_pushvalue(L, t);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0 || fuzz_error_is(L, unmarshal_errors), "unmarshal raised: %s",
               lua_tostring(L, -1));
    lua_settop(L, t);

    fuzz_core_fn(L, "unmarshal_item");
    lua_pushvalue(L, t);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0 || fuzz_error_is(L, unmarshal_errors), "unmarshal_item raised: %s",
               lua_tostring(L, -1));
    if (rc != 0) {
        lua_settop(L, top);
        fuzz_done(L, top);
        return 0;
    }
    /* t, plain */
    fuzz_core_fn(L, "marshal_item");
    lua_pushvalue(L, t + 1);
    rc = fuzz_pcall(L, 1, &n);
    if (rc != 0) {      /* duplicate or empty sets, numbers out of range: refused, fine */
        lua_settop(L, top);
        fuzz_done(L, top);
        return 0;
    }
    m1 = t + 2;
    fuzz_core_fn(L, "unmarshal_item");
    lua_pushvalue(L, m1);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0, "marshalled item does not read back: %s", lua_tostring(L, -1));
    fuzz_core_fn(L, "marshal_item");
    lua_insert(L, -2);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0, "read-back item does not marshal: %s", lua_tostring(L, -1));
    /* m1, m2: every attribute equal */
    lua_pushnil(L);
    while (lua_next(L, m1) != 0) {
        int eq;
        fuzz_core_fn(L, "av_equal");
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -4);
        lua_gettable(L, m1 + 1);
        rc = fuzz_pcall(L, 2, &n);
        eq = rc == 0 && lua_toboolean(L, -1);
        FUZZ_CHECK(eq, "attribute '%s' changed on a second round trip", lua_tostring(L, -3));
        lua_pop(L, 2);
    }
    lua_settop(L, top);
    fuzz_done(L, top);
    return 0;
}
