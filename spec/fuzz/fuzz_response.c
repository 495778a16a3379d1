/* libFuzzer target: core.parse_response, which turns every HTTP answer (status, body,
 * headers) into a result or a classified error, then the AttributeValue reader on items
 * the result holds. Input: 2 bytes of status, 1 byte of flags (which headers to send, and
 * whether to ask for Attributes as plain values), 4 bytes of a CRC-32 guess, then the body. */
#include "fuzz_lua.h"

static const char *const unmarshal_errors[] = {"malformed AttributeValue", NULL};

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

/* Runs core.unmarshal_item on result[field] when it is a table: a raise must be the
 * reader's own "malformed AttributeValue" error. */
static void unmarshal_field(lua_State *L, int result, const char *field)
{
    int n, rc;
    lua_getfield(L, result, field);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    fuzz_core_fn(L, "unmarshal_item");
    lua_insert(L, -2);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0 || fuzz_error_is(L, unmarshal_errors), "unmarshal_item raised: %s",
               lua_tostring(L, -1));
    lua_pop(L, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    int top = lua_gettop(L), n, rc, status, flags;
    const uint8_t *body;
    size_t blen;
    char num[32];
    if (size < 7)
        return 0;
    status = 100 + ((data[0] << 8) | data[1]) % 500;
    flags = data[2];
    body = data + 7;
    blen = size - 7;

    fuzz_core_fn(L, "parse_response");
    lua_pushinteger(L, status);
    lua_pushlstring(L, (const char *)body, blen);
    if (flags & 1) {
        lua_pushnil(L);     /* a transport that gives no header table */
    } else {
        lua_createtable(L, 0, 2);
        if (flags & 2) {
            uint32_t crc = flags & 4 ? crc32_of(body, blen)
                                     : (uint32_t)data[3] << 24 | (uint32_t)data[4] << 16 |
                                           (uint32_t)data[5] << 8 | data[6];
            snprintf(num, sizeof num, flags & 8 ? "%lu " : "%lu", (unsigned long)crc);
            lua_pushstring(L, num);
            lua_setfield(L, -2, "x-amz-crc32");
        }
        if (flags & 16) {
            lua_pushlstring(L, (const char *)data + 3, 4);
            lua_setfield(L, -2, "x-amzn-requestid");
        }
    }
    /* flag 32: ask for Attributes as plain values (with_item's writes), converted from
     * the JSON tree by a reader of its own */
    if (flags & 32)
        lua_pushliteral(L, "Attributes");
    rc = fuzz_pcall(L, flags & 32 ? 4 : 3, &n);
    FUZZ_CHECK(rc == 0, "parse_response raised: %s", lua_tostring(L, -1));
    if (lua_isnil(L, top + 1)) {
        FUZZ_CHECK(n == 2, "parse_response failed with %d values", n);
        fuzz_check_error(L, top + 2);
        unmarshal_field(L, top + 2, "item");
    } else {
        FUZZ_CHECK(n == 1 && lua_type(L, top + 1) == LUA_TTABLE, "parse_response returned "
                   "%d values, the first a %s", n, luaL_typename(L, top + 1));
        FUZZ_CHECK(status >= 200 && status < 300, "status %d gave a result", status);
        unmarshal_field(L, top + 1, "Item");
        if (flags & 32) {
            lua_getfield(L, top + 1, "Attributes");
            FUZZ_CHECK(lua_isnil(L, -1) || lua_type(L, -1) == LUA_TTABLE,
                       "plain Attributes is a %s", luaL_typename(L, -1));
            lua_pop(L, 1);
        } else {
            unmarshal_field(L, top + 1, "Attributes");
        }
    }
    lua_settop(L, top);
    fuzz_done(L, top);
    return 0;
}
