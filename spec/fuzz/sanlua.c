/* A minimal `lua SCRIPT ARGS...` (or `lua -e CHUNK`, as ddb.sandbox starts its child) for
 * `make asan`: the sanitizer runtime lives in this
 * executable, so only this process is instrumented. Preloading libasan into the stock lua5.4
 * would instrument every child the specs start too (the botocore vector generator, the
 * servers), and LeakSanitizer stalls in Python at exit. Built by spec/support/full.mk
 * against the static Lua library (5.4 or LuaJIT), with its symbols exported for C modules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* Lua unloads C modules in lua_close; a leak found after that has only bare addresses.
 * Keeping every module mapped lets LeakSanitizer name the frames. Interposes libc's. */
int dlclose(void *handle)
{
    (void)handle;
    return 0;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
#if LUA_VERSION_NUM >= 502
    luaL_traceback(L, L, msg, 1);
#else
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_pushstring(L, msg);
    lua_pushinteger(L, 2);
    lua_call(L, 2, 1);
#endif
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L;
    int i, status, base;
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...] | -e CHUNK\n", argv[0]);
        return 2;
    }
    /* a leak report ends the process before stdio is flushed: write as we go */
    setvbuf(stdout, NULL, _IONBF, 0);
    L = luaL_newstate();
    if (L == NULL)
        return 1;
    luaL_openlibs(L);
    /* arg as lua.c sets it: arg[0] the script, arg[-1] the interpreter */
    lua_createtable(L, argc - 2, 2);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, traceback);
    base = lua_gettop(L);
    if (strcmp(argv[1], "-e") == 0) {
        /* the CLI's sandbox child: one chunk, no script */
        status = argc == 3 ? luaL_loadstring(L, argv[2]) : LUA_ERRSYNTAX;
        if (argc != 3)
            lua_pushliteral(L, "-e takes one chunk and nothing after it");
        if (status == 0)
            status = lua_pcall(L, 0, 0, base);
    } else if ((status = luaL_loadfile(L, argv[1])) == 0) {
        for (i = 2; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, base);
    }
    if (status != 0) {
        fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_close(L);
    return status == 0 ? 0 : 1;
}
