/* libFuzzer target: the text readers of the configuration and credentials code, which is
 * Lua: ddb.config's parse_ini (~/.aws/credentials and ~/.aws/config), parse_endpoint and
 * region; ddb.time's ISO 8601 and HTTP dates; the STS answers' XML reader and parser.
 * Contract: nil, err or a value for any text, never a raise; a reader that is missing fails
 * the target (it must not fuzz nothing in silence). Input: one byte choosing the reader,
 * then its text. */
#include "fuzz_lua.h"

static const struct {
    const char *module, *fn;
} readers[] = {
    {"ddb.config", "parse_ini"},
    {"ddb.config", "parse_ini"},
    {"ddb.config", "parse_endpoint"},
    {"ddb.config", "region"},
    {"ddb.time", "parse_iso8601"},
    {"ddb.credentials.xml", "leaves"},
    {"ddb.credentials.sts", "parse"},
    {"ddb.time", "parse_http_date"},
};
#define NREADERS (sizeof readers / sizeof readers[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_L ? fuzz_L : (fuzz_cover_lua(fuzz_state()), fuzz_L);
    int top = lua_gettop(L), n, rc, nargs = 1;
    unsigned which;
    if (size < 1)
        return 0;
    which = data[0] % NREADERS;
    lua_getglobal(L, "require");
    lua_pushstring(L, readers[which].module);
    FUZZ_CHECK(lua_pcall(L, 1, 1, 0) == 0, "require %s: %s", readers[which].module,
               lua_tostring(L, -1));
    lua_getfield(L, -1, readers[which].fn);
    lua_remove(L, -2);
    FUZZ_CHECK(lua_type(L, -1) == LUA_TFUNCTION, "%s.%s is missing", readers[which].module,
               readers[which].fn);
    if (strcmp(readers[which].module, "ddb.credentials.sts") == 0) {
        lua_pushstring(L, size > 1 && (data[1] & 1) ? "AssumeRole" : "AssumeRoleWithWebIdentity");
        lua_pushinteger(L, size > 1 && (data[1] & 2) ? 400 : 200);
        nargs = 3;
    }
    lua_pushlstring(L, (const char *)data + 1, size - 1);
    rc = fuzz_pcall(L, nargs, &n);
    FUZZ_CHECK(rc == 0, "%s.%s raised: %s", readers[which].module, readers[which].fn,
               lua_tostring(L, -1));
    lua_settop(L, top);
    fuzz_done(L, top);
    return 0;
}
