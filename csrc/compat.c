/* Lua 5.1/LuaJIT shims for the few 5.2+ auxiliary functions the core uses. */
#include "compat.h"

#if LUA_VERSION_NUM < 502
void ddb_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

void *ddb_compat_testudata(lua_State *L, int idx, const char *tname)
{
    void *p = lua_touserdata(L, idx);
    if (p == NULL || !lua_getmetatable(L, idx))
        return NULL;
    luaL_getmetatable(L, tname);
    if (!lua_rawequal(L, -1, -2))
        p = NULL;
    lua_pop(L, 2);
    return p;
}
#endif

int ddb_compat_newmetatable(lua_State *L, const char *name)
{
    int created = luaL_newmetatable(L, name);
    if (created) {
        /* 5.1 does not set __name; set it everywhere so tostring and errors can name the type. */
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
    }
    return created;
}
