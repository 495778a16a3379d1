/* Shared by the libFuzzer targets: one Lua state (5.4) with ddb.core linked in statically,
 * calls into it under lua_pcall, and invariants that abort (so libFuzzer keeps the input)
 * when a parser breaks its contract instead of merely refusing bad input. */
#ifndef DDB_FUZZ_LUA_H
#define DDB_FUZZ_LUA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_ddb_core(lua_State *L);

#ifndef DDB_LUA_DIR
#define DDB_LUA_DIR "lua"
#endif

static lua_State *fuzz_L;

/* Coverage of Lua code for libFuzzer, which only sees the C it instrumented: a line hook
 * counts (previous line, line) pairs of Lua functions in libFuzzer's extra counters, so a
 * target that fuzzes Lua code (fuzz_config) is guided by the Lua lines it reaches. */
#define FUZZ_LUA_COUNTERS 8192
__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t fuzz_lua_counters[FUZZ_LUA_COUNTERS];
static uintptr_t fuzz_lua_prev;

static inline void fuzz_line_hook(lua_State *L, lua_Debug *ar)
{
    uintptr_t cur;
    if (!lua_getinfo(L, "S", ar))
        return;
    cur = ((uintptr_t)ar->source >> 4) * 2654435761u ^ (uintptr_t)ar->currentline * 40503u;
    fuzz_lua_counters[(cur ^ fuzz_lua_prev) % FUZZ_LUA_COUNTERS]++;
    fuzz_lua_prev = cur >> 1;
}

/* Turns Lua line coverage on for the state (call once, after fuzz_state). */
static inline void fuzz_cover_lua(lua_State *L)
{
    lua_sethook(L, fuzz_line_hook, LUA_MASKLINE, 0);
}

#define FUZZ_CHECK(cond, ...)                                                                \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz invariant failed (%s:%d): %s\n  ", __FILE__, __LINE__,     \
                    #cond);                                                                  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* The state, created once: the standard libraries, package.preload["ddb.core"] and
 * package.path on the project's lua/ directory; the core module in the global "core". */
static inline lua_State *fuzz_state(void)
{
    lua_State *L = fuzz_L;
    if (L != NULL)
        return L;
    L = luaL_newstate();
    FUZZ_CHECK(L != NULL, "no Lua state");
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_ddb_core);
    lua_setfield(L, -2, "ddb.core");
    lua_pop(L, 1);
    lua_pushstring(L, DDB_LUA_DIR "/?.lua;" DDB_LUA_DIR "/?/init.lua");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "ddb.core");
    FUZZ_CHECK(lua_pcall(L, 1, 1, 0) == 0, "require ddb.core: %s", lua_tostring(L, -1));
    lua_setglobal(L, "core");
    fuzz_L = L;
    return L;
}

/* Pushes core[name]. */
static inline void fuzz_core_fn(lua_State *L, const char *name)
{
    lua_getglobal(L, "core");
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    FUZZ_CHECK(lua_type(L, -1) == LUA_TFUNCTION, "core.%s is missing", name);
}

/* Calls the function below nargs arguments with LUA_MULTRET; returns the lua_pcall status
 * and the number of results (or 1 for the error message) in *nres. */
static inline int fuzz_pcall(lua_State *L, int nargs, int *nres)
{
    int base = lua_gettop(L) - nargs - 1;
    int rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
    *nres = lua_gettop(L) - base;
    return rc;
}

/* True when the error message on top starts with one of the prefixes (NULL-terminated). */
static inline int fuzz_error_is(lua_State *L, const char *const *prefixes)
{
    const char *msg = lua_tostring(L, -1);
    int i;
    if (msg == NULL)
        return 0;
    for (i = 0; prefixes[i] != NULL; i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

/* After each input: the stack back where it was, and garbage collected now, so that a
 * finaliser touching freed memory fails on the input that caused it. */
static inline void fuzz_done(lua_State *L, int top)
{
    FUZZ_CHECK(lua_gettop(L) == top, "stack at %d, expected %d", lua_gettop(L), top);
    lua_gc(L, LUA_GCCOLLECT, 0);
}

/* Checks the shape of an error table at idx: code, message, applied, retryable. */
static inline void fuzz_check_error(lua_State *L, int idx)
{
    const char *applied;
    FUZZ_CHECK(lua_type(L, idx) == LUA_TTABLE, "err is a %s", luaL_typename(L, idx));
    lua_getfield(L, idx, "code");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0, "err.code is not a "
               "non-empty string");
    lua_getfield(L, idx, "message");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "err.message is a %s", luaL_typename(L, -1));
    lua_getfield(L, idx, "applied");
    applied = lua_tostring(L, -1);
    FUZZ_CHECK(applied != NULL && (strcmp(applied, "no") == 0 || strcmp(applied, "maybe") == 0),
               "err.applied is %s", applied ? applied : "(none)");
    lua_getfield(L, idx, "retryable");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TBOOLEAN, "err.retryable is not a boolean");
    lua_pop(L, 4);
}

#endif
