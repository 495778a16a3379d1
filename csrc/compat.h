/* One place for the differences between Lua 5.1/LuaJIT and 5.3/5.4 that the core touches. */
#ifndef DDB_COMPAT_H
#define DDB_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include "visibility.h"

DDB_HIDDEN_BEGIN

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
#ifndef luaL_newlibtable
#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
#endif
#ifndef luaL_newlib
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
#endif
void ddb_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
#define luaL_setfuncs(L, l, n) ddb_compat_setfuncs((L), (l), (n))
void *ddb_compat_testudata(lua_State *L, int idx, const char *tname);
#define luaL_testudata(L, i, t) ddb_compat_testudata((L), (i), (t))
#endif

#if LUA_VERSION_NUM < 503
#define DDB_HAS_INTEGERS 0
#else
#define DDB_HAS_INTEGERS 1
#endif

/* Pushes the metatable registered under name, creating it when absent; returns 1 when created. */
int ddb_compat_newmetatable(lua_State *L, const char *name);

DDB_HIDDEN_END

#endif
