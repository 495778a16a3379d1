/* What one read of an item tells the engine (lua/ddb/engine/state.lua), read straight from
 * the item doc an answer was kept as: its version as canonical text and its write-token
 * history, without making the AttributeValue tables in between. */
#include "state.h"
#include "av.h"
#include "json.h"
#include "tokens.h"
#include "version.h"

/* The attribute named k[0..n) of the doc, as doc[k] reads it (a null one is none). */
static const ddb_jnode *attr(const av_doc *doc, const char *k, size_t n)
{
    const ddb_jnode *c = ddb_av_doc_find(doc, k, n);
    return c != NULL && c->type != DDB_J_NULL ? c : NULL;
}

/* Pushes what a bad version attribute holds, as the message shows it: the first value in
 * its AttributeValue (or list) that is not null, or nil. */
static void push_shown(lua_State *L, const ddb_jnode *av)
{
    const ddb_jnode *c = av + 1;
    uint32_t i;
    if (av->type == DDB_J_OBJECT || av->type == DDB_J_ARRAY)
        for (i = 0; i < av->len; i++, c += c->skip)
            if (c->type != DDB_J_NULL) {
                ddb_json_push_node(L, c);
                return;
            }
    lua_pushnil(L);
}

/* core.doc_state(doc, version, tokens) -> version, hav, history
 *   | false, why, shown
 * The state.of of an item doc: version, the version attribute's N as canonical text (nil
 * when the item has none); hav, the tokens attribute's AttributeValue (nil when none);
 * history, its tokens newest first (nil when it holds no history this module wrote). A
 * version attribute that is not a version gives false, why, and what it holds. */
static int state_lua_doc_state(lua_State *L)
{
    const av_doc *doc = ddb_av_doc_test(L, 1);
    const ddb_jnode *v, *h, *text;
    size_t vn, tn;
    const char *vname = luaL_checklstring(L, 2, &vn), *tname = luaL_checklstring(L, 3, &tn);
    char out[VERSION_TEXT_MAX];

    luaL_argcheck(L, doc != NULL, 1, "item doc expected");
    v = attr(doc, vname, vn);
    if (v == NULL) {
        lua_pushnil(L);
    } else {
        const char *why = "not a number";
        text = ddb_av_last_member(v, "N", 1);
        if (text != NULL && text->type == DDB_J_STRING)
            why = ddb_version_parse(text->s, text->len, out);
        if (why != NULL) {
            lua_pushboolean(L, 0);
            lua_pushstring(L, why);
            push_shown(L, v);
            return 3;
        }
        lua_pushstring(L, out);
    }
    h = attr(doc, tname, tn);
    if (h == NULL) {
        lua_pushnil(L);
        lua_pushnil(L);
        return 3;
    }
    ddb_json_push_node(L, h);
    text = ddb_av_last_member(h, "S", 1);
    if (text == NULL || text->type != DDB_J_STRING || !ddb_tokens_push_list(L, text->s,
                                                                             text->len))
        lua_pushnil(L);
    return 3;
}

void ddb_state_register(lua_State *L)
{
    lua_pushcfunction(L, state_lua_doc_state);
    lua_setfield(L, -2, "doc_state");
}
