/* libFuzzer target: the write-token history (core.history_tokens, core.history_push) and
 * exact versions (core.version_parse, core.version_add), the texts with_item reads back from
 * items any writer may have touched. Contract: nil or a value for any text, never a raise;
 * a push keeps the new token first and the old tokens after it, in order, up to keep; a
 * version's canonical text reads back as itself and steps back to where it came from.
 * Input: one byte choosing the reader, one for keep or the step, then the text. */
#include "fuzz_lua.h"

static const char CHECKS[] =
    "local core, mode, arg, text = ...\n"
    "if mode == 0 then\n"
    "  local h = core.history_tokens(text)\n"
    "  assert(h == nil or type(h) == 'table', 'history_tokens gave ' .. type(h))\n"
    "  local keep = 1 + arg % 16\n"
    "  local r = core.history_push(text, 'TOKEN_new-01', keep)\n"
    "  local t = assert(core.history_tokens(r), 'a pushed history does not read back: ' .. r)\n"
    "  assert(t[1] == 'TOKEN_new-01', 'the new token is not first')\n"
    "  local want = math.min(keep, 1 + (h and #h or 0))\n"
    "  assert(#t == want, ('%d tokens kept, want %d'):format(#t, want))\n"
    "  for i = 2, #t do assert(t[i] == h[i - 1], 'old token ' .. (i - 1) .. ' changed') end\n"
    "  assert(r:sub(1, 2) == '2 ', 'not format 2')\n"
    "else\n"
    "  local v = core.version_parse(text)\n"
    "  if v == nil then return end\n"
    "  assert(type(v) == 'string' and core.version_parse(v) == v, 'not canonical: ' .. tostring(v))\n"
    "  local step = arg % 7 - 3\n"
    "  local w = core.version_add(v, step)\n"
    "  if w == nil then return end\n"
    "  assert(core.version_parse(w) == w, 'a stepped version is not canonical: ' .. w)\n"
    "  assert(core.version_add(w, -step) == v, v .. ' + ' .. step .. ' - ' .. step .. ' ~= ' .. v)\n"
    "end\n";

static int checks_ref = LUA_NOREF;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state();
    int top = lua_gettop(L), n;
    if (size < 2)
        return 0;
    if (checks_ref == LUA_NOREF) {
        FUZZ_CHECK(luaL_loadstring(L, CHECKS) == 0, "checks: %s", lua_tostring(L, -1));
        checks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, checks_ref);
    lua_getglobal(L, "core");
    lua_pushinteger(L, data[0] % 2);
    lua_pushinteger(L, data[1]);
    lua_pushlstring(L, (const char *)data + 2, size - 2);
    FUZZ_CHECK(fuzz_pcall(L, 4, &n) == 0, "%s", lua_tostring(L, -1));
    lua_settop(L, top);
    return 0;
}
