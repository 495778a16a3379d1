/* libFuzzer target: core.parse_response, which turns every HTTP answer (status, body,
 * headers) into a result or a classified error, then the AttributeValue reader on items
 * the result holds. Input: 2 bytes of status, 1 byte of flags (which headers to send, and
 * whether to ask for Attributes as plain values or for Item as an item doc), 4 bytes of a
 * CRC-32 guess, then the body. */
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

/* An item doc must say what its tables say: the same size, the same attributes (a value that
 * is not an AttributeValue object, from a broken server, the same value as the tables give),
 * the same plan against the plain copy read with it, and the same update's body for that
 * copy and for one with an attribute gone and one new (global "core"; raises on a
 * difference). */
static const char doc_check[] =
    "local res = ...\n"
    "local doc = res.Item\n"
    "local av = core.item_av(doc)\n"
    "assert(type(av) == 'table', 'item_av gave a ' .. type(av))\n"
    "assert(core.item_size(doc) == core.item_size(av), 'the sizes differ')\n"
    "for k, v in pairs(av) do\n"
    "  assert(type(doc[k]) == type(v) and (type(v) == 'table' or doc[k] == v), 'doc lacks ' .. k)\n"
    "end\n"
    "if res.plain then\n"
    "  local a = { pcall(core.plan_diff, av, res.plain, nil, nil, true) }\n"
    "  local b = { pcall(core.plan_diff, doc, res.plain, nil, nil, true) }\n"
    "  assert(a[1] == b[1], 'plan_diff raised on one side only')\n"
    "  if a[1] then\n"
    "    assert(#a[2] == #b[2] and #a[4] == #b[4] and a[5] == b[5], 'the plans differ')\n"
    "    for i = 1, #a[2] do assert(a[2][i] == b[2][i], 'the sets differ') end\n"
    "  end\n"
    "  local changed = {}\n"
    "  for k, v in pairs(res.plain) do changed[k] = v end\n"
    "  changed[next(changed) or 'zz'] = nil\n"
    "  changed.zz_new = 1\n"
    "  local function up(old, item)\n"
    "    return { pcall(core.update_plan, 't', { pk = { S = 'k' } }, { 'pk' }, old, item,\n"
    "      'version', { N = '2' }, '_ddb_tokens', { S = '1 T' }, '#V = :c1 AND #T = :c2', nil,\n"
    "      { [':c1'] = { N = '1' }, [':c2'] = { S = 'x' } }, 'ALL_NEW', 4096) }\n"
    "  end\n"
    "  for _, item in ipairs({ res.plain, changed }) do\n"
    "    local c, d = up(av, item), up(doc, item)\n"
    "    assert(c[1] == d[1], 'update_plan raised on one side only')\n"
    "    if c[1] then\n"
    "      for i = 2, 5 do assert(c[i] == d[i], 'the updates differ') end\n"
    "    end\n"
    "  end\n"
    "end\n";

static void check_doc(lua_State *L, int result)
{
    int n, rc;
    lua_getfield(L, result, "Item");
    rc = lua_type(L, -1) == LUA_TUSERDATA;
    lua_pop(L, 1);
    if (!rc)
        return;
    FUZZ_CHECK(luaL_loadstring(L, doc_check) == 0, "doc check: %s", lua_tostring(L, -1));
    lua_pushvalue(L, result);
    rc = fuzz_pcall(L, 1, &n);
    FUZZ_CHECK(rc == 0, "item doc: %s", lua_tostring(L, -1));
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
    /* flag 64 (without 32): ask for Item as an item doc with its plain copy (GetItem's) */
    if (flags & 32)
        lua_pushliteral(L, "Attributes");
    else if (flags & 64)
        lua_pushliteral(L, "*Item");
    rc = fuzz_pcall(L, flags & 96 ? 4 : 3, &n);
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
        check_doc(L, top + 1);
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
