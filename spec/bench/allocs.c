/* make bench-allocations: a Lua 5.4 host that counts the allocations a script makes and
 * names the Lua line that made each one. Built against Debian's static liblua5.4.a with its
 * symbols exported (-Wl,-E), so that C modules (the core) load into it as into lua5.4.
 *
 *   lua-allocs SCRIPT [ARGS...]
 *
 * The script gets two functions: allocs.start() clears the counts and starts counting;
 * allocs.stop() stops and returns { count = n, bytes = b, lines = { { where = "file:line",
 * count = n, bytes = b }, ... } }, busiest line first. An allocation is a new block or one
 * grown by realloc; it is put down to the last Lua line run (a line hook every coroutine
 * inherits), so a C function's allocations go to the line that called it. */
#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 16384   /* distinct lines; a full table puts the rest under "?" */

typedef struct {
    const char *source;   /* the chunk's name, as the Proto holds it (it outlives the count) */
    int line;
    long count;
    long bytes;
} site;

static site sites[SLOTS + 1];   /* + 1: room for "?" when reporting */
static site other = { "?", 0, 0, 0 };
static const char *cur_source = "?";
static int cur_line;
static int counting;
static long total_count, total_bytes;

static void note(size_t size)
{
    size_t h = (((size_t)cur_source >> 4) * 31u + (size_t)cur_line) % SLOTS, probes;
    site *s = &other;
    for (probes = 0; probes < SLOTS; probes++, h = (h + 1) % SLOTS) {
        if (sites[h].source == NULL) {
            sites[h].source = cur_source;
            sites[h].line = cur_line;
        }
        if (sites[h].source == cur_source && sites[h].line == cur_line) {
            s = &sites[h];
            break;
        }
    }
    s->count++;
    s->bytes += (long)size;
    total_count++;
    total_bytes += (long)size;
}

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (counting && (ptr == NULL || nsize > osize))
        note(nsize);
    return realloc(ptr, nsize);
}

static void on_line(lua_State *L, lua_Debug *ar)
{
    if (counting && lua_getinfo(L, "Sl", ar)) {
        cur_source = ar->source;
        cur_line = ar->currentline;
    }
}

static int allocs_start(lua_State *L)
{
    (void)L;
    memset(sites, 0, sizeof sites);
    other.count = other.bytes = 0;
    total_count = total_bytes = 0;
    counting = 1;
    return 0;
}

static int by_count(const void *a, const void *b)
{
    const site *x = a, *y = b;
    return (y->count > x->count) - (y->count < x->count);
}

static int allocs_stop(lua_State *L)
{
    size_t i, n = 0;
    counting = 0;
    for (i = 0; i < SLOTS; i++)
        if (sites[i].source != NULL)
            sites[n++] = sites[i];
    if (other.count > 0)
        sites[n++] = other;
    qsort(sites, n, sizeof *sites, by_count);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, total_count);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, total_bytes);
    lua_setfield(L, -2, "bytes");
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        const char *src = sites[i].source;
        lua_createtable(L, 0, 3);
        lua_pushfstring(L, "%s:%d", src[0] == '@' ? src + 1 : src, sites[i].line);
        lua_setfield(L, -2, "where");
        lua_pushinteger(L, sites[i].count);
        lua_setfield(L, -2, "count");
        lua_pushinteger(L, sites[i].bytes);
        lua_setfield(L, -2, "bytes");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "lines");
    memset(sites, 0, sizeof sites);
    return 1;
}

int main(int argc, char **argv)
{
    static const luaL_Reg fns[] = { { "start", allocs_start }, { "stop", allocs_stop },
                                    { NULL, NULL } };
    lua_State *L;
    int i, rc;
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    L = lua_newstate(counting_alloc, NULL);
    if (L == NULL)
        return 1;
    luaL_openlibs(L);
    luaL_newlib(L, fns);
    lua_setglobal(L, "allocs");
    lua_createtable(L, argc, 0);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    lua_sethook(L, on_line, LUA_MASKLINE, 0);
    rc = luaL_loadfile(L, argv[1]);
    if (rc == LUA_OK) {
        for (i = 2; i < argc; i++)
            lua_pushstring(L, argv[i]);
        rc = lua_pcall(L, argc - 2, 0, 0);
    }
    if (rc != LUA_OK)
        fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
    lua_close(L);
    return rc == LUA_OK ? 0 : 1;
}
