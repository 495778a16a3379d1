/* A program that embeds Lua and uses cJSON itself, with its own allocator: it loads ddb.core,
 * has it encode and decode, and checks that its allocator stayed in place (issue 16.2).
 * Usage: cjson_host <path of ddb/core.so's directory pattern, as in package.cpath>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* Each block carries a tag, so a block of ours freed by another free, or another's block
 * freed by ours, is caught: glibc aborts on the first, host_free on the second. */
#define TAG 0x686f7374u
typedef union { unsigned tag; long double align; } header;

static long live, allocs;

static void *host_malloc(size_t n)
{
    header *h = malloc(sizeof *h + n);
    if (h == NULL)
        return NULL;
    h->tag = TAG;
    live++;
    allocs++;
    return h + 1;
}

static void host_free(void *p)
{
    header *h;
    if (p == NULL)
        return;
    h = (header *)p - 1;
    if (h->tag != TAG) {
        fprintf(stderr, "host_free: a block the host did not allocate\n");
        abort();
    }
    h->tag = 0;
    live--;
    free(h);
}

static int fail(const char *what)
{
    fprintf(stderr, "cjson_host: %s\n", what);
    return 1;
}

/* 1 when a new cJSON node still comes from host_malloc and goes back through host_free. */
static int hooks_in_place(void)
{
    long before = allocs, live_before = live;
    cJSON *j = cJSON_CreateString("probe");
    int ok = j != NULL && allocs > before;
    cJSON_Delete(j);
    return ok && live == live_before;
}

static const char chunk[] =
    "local core = require 'ddb.core'\n"
    "for _ = 1, 50 do\n"
    "  local v = assert(core.decode('{\"a\":[1,2.5,{\"b\":\"c\"}],\"d\":true,\"e\":null}'))\n"
    "  assert(v.a[3].b == 'c' and v.d == true)\n"
    "  assert(core.encode({ k = { 'x', 'y' } }) == '{\"k\":[\"x\",\"y\"]}')\n"
    "  assert(core.decode('{\"a\":') == nil)\n"
    "  local item = assert(core.decode('{\"Item\":{\"n\":{\"N\":\"1\"},\"s\":{\"SS\":[\"q\"]}}}'))\n"
    "  assert(core.unmarshal_item(item.Item).n ~= nil)\n"
    "end\n";

int main(int argc, char **argv)
{
    cJSON_Hooks hooks = { host_malloc, host_free };
    cJSON *mine;
    lua_State *L;
    if (argc != 2)
        return fail("usage: cjson_host <package.cpath>");
    cJSON_InitHooks(&hooks);
    /* an object of the host's, made before the module is loaded and freed after */
    mine = cJSON_CreateObject();
    cJSON_AddStringToObject(mine, "made", "before the module");
    cJSON_AddItemToObject(mine, "list", cJSON_CreateIntArray((const int[]){ 1, 2, 3 }, 3));
    if (live == 0)
        return fail("cJSON did not allocate through the host's hooks");

    L = luaL_newstate();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, argv[1]);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    if (luaL_loadstring(L, chunk) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
        fprintf(stderr, "cjson_host: %s\n", lua_tostring(L, -1));
        return 1;
    }
    if (!hooks_in_place())
        return fail("the host's cJSON hooks were replaced while the module ran");
    cJSON_Delete(mine);   /* aborts in glibc if another free gets our blocks */

    lua_close(L);          /* unloads the module: its destructors run */
    if (!hooks_in_place())
        return fail("the host's cJSON hooks were replaced when the module unloaded");
    if (live != 0) {
        fprintf(stderr, "cjson_host: %ld blocks of the host's allocator not freed\n", live);
        return 1;
    }
    printf("ok %ld allocations\n", allocs);
    return 0;
}
