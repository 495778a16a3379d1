/* libFuzzer target: DynamoDB error answers through core.parse_response. Every one must
 * become an error whose fields follow the classification rules the retry loop relies on:
 * a 4xx was not applied, a 5xx may have been, retryable exactly when the class is not
 * "none"; and the item a failed condition returns (ALL_OLD) reads as an item or as the
 * reader's own error. Input: 1 byte choosing the status, then the body. */
#include "fuzz_lua.h"

static const int statuses[] = {400, 400, 400, 403, 404, 408, 413, 429, 500, 502, 503, 504};
static const char *const unmarshal_errors[] = {"malformed AttributeValue", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    int top = lua_gettop(L), n, rc, status, err;
    const char *applied, *cls;
    if (size < 1)
        return 0;
    status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    fuzz_core_fn(L, "parse_response");
    lua_pushinteger(L, status);
    lua_pushlstring(L, (const char *)data + 1, size - 1);
    lua_newtable(L);
    rc = fuzz_pcall(L, 3, &n);
    FUZZ_CHECK(rc == 0, "parse_response raised: %s", lua_tostring(L, -1));
    FUZZ_CHECK(n == 2 && lua_isnil(L, top + 1), "status %d did not give nil, err", status);
    err = top + 2;
    fuzz_check_error(L, err);
    lua_getfield(L, err, "applied");
    applied = lua_tostring(L, -1);
    FUZZ_CHECK(strcmp(applied, status >= 500 ? "maybe" : "no") == 0, "status %d: applied %s",
               status, applied);
    lua_getfield(L, err, "retry_class");
    cls = lua_tostring(L, -1);
    FUZZ_CHECK(cls != NULL && (strcmp(cls, "none") == 0 || strcmp(cls, "throttle") == 0 ||
                               strcmp(cls, "transient") == 0), "retry_class %s", cls);
    lua_getfield(L, err, "retryable");
    FUZZ_CHECK(lua_toboolean(L, -1) == (strcmp(cls, "none") != 0), "retryable disagrees "
               "with retry_class %s", cls);
    FUZZ_CHECK(status < 500 || strcmp(cls, "none") != 0, "a %d is not retryable", status);
    lua_getfield(L, err, "status");
    FUZZ_CHECK(lua_tointeger(L, -1) == status, "err.status is not %d", status);
    lua_pop(L, 4);
    lua_getfield(L, err, "item");
    if (lua_type(L, -1) == LUA_TTABLE) {
        fuzz_core_fn(L, "unmarshal_item");
        lua_insert(L, -2);
        rc = fuzz_pcall(L, 1, &n);
        FUZZ_CHECK(rc == 0 || fuzz_error_is(L, unmarshal_errors), "unmarshal_item raised: %s",
                   lua_tostring(L, -1));
    }
    lua_settop(L, top);
    fuzz_done(L, top);
    return 0;
}
