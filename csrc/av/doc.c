/* An item kept as the answer's parsed nodes (a GetItem's Item) rather than as AttributeValue
 * tables: the engine reads a few attributes and compares the function's result against the
 * rest, so most of a big item is never turned into Lua tables. One userdata holds the nodes,
 * the bytes they point into and a sorted index of the item's attributes: Lua's collector sees
 * all of it, and there is nothing to free. */
#include "internal.h"
#include "../number.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The block after the header: nodes[count], the item's attribute nodes sorted by name
 * (index), the answer's bytes, then the unescaped strings. */
struct av_doc {
    const ddb_jnode *item;  /* the member named at read, or NULL */
    const ddb_jnode **index;
    size_t nattrs;
    int regular;            /* a non-empty object, no null and no name given twice */
};

/* Keys a sort of member nodes: by name, then by place (ties would be a name given twice). */
int ddb_av_member_cmp(const void *a, const void *b)
{
    const ddb_jnode *x = *(const ddb_jnode *const *)a, *y = *(const ddb_jnode *const *)b;
    int c = memcmp(x->key, y->key, x->keylen < y->keylen ? x->keylen : y->keylen);
    if (c != 0)
        return c;
    if (x->keylen != y->keylen)
        return x->keylen < y->keylen ? -1 : 1;
    return x < y ? -1 : (x > y);
}

int ddb_av_members_sort(const ddb_jnode **m, size_t count)
{
    size_t i;
    qsort(m, count, sizeof *m, ddb_av_member_cmp);
    for (i = 1; i < count; i++)
        if (m[i]->keylen == m[i - 1]->keylen && memcmp(m[i]->key, m[i - 1]->key, m[i]->keylen) == 0)
            return 0;
    return 1;
}

static const char *rebase(const char *p, const char *from, size_t n, const char *to)
{
    return p != NULL && from != NULL && p >= from && p < from + n ? to + (p - from) : p;
}

const ddb_jnode *ddb_av_last_member(const ddb_jnode *obj, const char *name, int skip_null)
{
    const ddb_jnode *c = obj + 1, *found = NULL;
    size_t nl = strlen(name);
    uint32_t i;
    if (obj->type != DDB_J_OBJECT)
        return NULL;
    for (i = 0; i < obj->len; i++, c += c->skip)
        if (c->keylen == nl && memcmp(c->key, name, nl) == 0 &&
            !(skip_null && c->type == DDB_J_NULL))
            found = c;
    return found;
}

static int new_block(lua_State *L)
{
    lua_newuserdata(L, *(const size_t *)lua_touserdata(L, 1));
    return 1;
}

int ddb_av_doc_read(lua_State *L, const char *s, size_t n, const char *member, int max_depth)
{
    ddb_jdoc d;
    ddb_jnode local[DDB_JDOC_LOCAL];
    av_doc *doc;
    ddb_jnode *nodes;
    char *bytes, *text;
    const ddb_jnode *item = NULL;
    size_t i, nattrs = 0, block;
    int rc = ddb_jdoc_read_in(&d, local, DDB_JDOC_LOCAL, s, n, max_depth);
    if (rc != 0) {
        ddb_jdoc_free(&d);
        if (rc == -2)
            return luaL_error(L, "out of memory");
        return -1;
    }
    /* what the decoder refuses when it makes the values, refused here, where the item's
     * values are made later or never: a JSON number beyond a double (AttributeValues hold
     * their numbers as strings, so a well-formed answer has none in its item) */
    for (i = 0; i < d.count; i++) {
        const ddb_jnode *j = &d.nodes[i];
        /* without an exponent, 300 digits stay below 1e300: only these need reading */
        if (j->type == DDB_J_NUMBER && (j->len > 300 || memchr(j->s, 'e', j->len) != NULL ||
                                        memchr(j->s, 'E', j->len) != NULL)) {
            double v = ddb_number_read(j->s, j->len);
            if (isinf(v) || isnan(v)) {
                ddb_jdoc_free(&d);
                return -1;
            }
        }
    }
    if (d.nodes[0].type == DDB_J_OBJECT)
        item = ddb_av_last_member(&d.nodes[0], member, 0);
    if (item != NULL && item->type == DDB_J_OBJECT)
        nattrs = item->len;
    block = sizeof *doc + d.count * sizeof *nodes + nattrs * sizeof *doc->index + n +
            d.text_used;
    /* the userdata in a protected call: a memory error must not leak d's nodes */
    lua_pushcfunction(L, new_block);
    lua_pushlightuserdata(L, &block);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        ddb_jdoc_free(&d);
        return lua_error(L);
    }
    doc = lua_touserdata(L, -1);
    memset(doc, 0, sizeof *doc);
    nodes = (ddb_jnode *)(doc + 1);
    doc->index = (const ddb_jnode **)(nodes + d.count);
    bytes = (char *)(doc->index + nattrs);
    text = bytes + n;
    memcpy(nodes, d.nodes, d.count * sizeof *nodes);
    memcpy(bytes, s, n);
    if (d.text_used > 0)
        memcpy(text, d.text, d.text_used);
    for (i = 0; i < d.count; i++) {
        nodes[i].s = rebase(rebase(nodes[i].s, s, n, bytes), d.text, d.text_used, text);
        nodes[i].key = rebase(rebase(nodes[i].key, s, n, bytes), d.text, d.text_used, text);
    }
    if (item != NULL) {
        const ddb_jnode *c;
        doc->item = nodes + (item - d.nodes);
        c = doc->item + 1;
        doc->regular = nattrs > 0;
        for (i = 0; i < nattrs; i++, c += c->skip) {
            doc->index[i] = c;
            if (c->type == DDB_J_NULL)
                doc->regular = 0;
        }
        doc->nattrs = nattrs;
        if (!ddb_av_members_sort(doc->index, nattrs))
            doc->regular = 0;
    }
    ddb_jdoc_free(&d);
    luaL_getmetatable(L, AV_DOC_MT);
    lua_setmetatable(L, -2);
    return 0;
}

av_doc *ddb_av_doc_test(lua_State *L, int idx)
{
    av_doc *doc = lua_touserdata(L, idx);
    return doc != NULL && ddb_json_has_mt(L, idx, AV_DOC_MT) ? doc : NULL;
}

const ddb_jnode *ddb_av_doc_nodes(const av_doc *doc)
{
    return (const ddb_jnode *)(doc + 1);
}

int ddb_av_doc_push_member(lua_State *L, int idx)
{
    const av_doc *doc = ddb_av_doc_test(L, idx);
    if (doc == NULL || doc->item == NULL)
        return 0;
    if (doc->regular)
        lua_pushvalue(L, idx);
    else
        ddb_json_push_node(L, doc->item);
    return 1;
}

const ddb_jnode *ddb_av_doc_item(const av_doc *doc)
{
    return doc->item;
}

size_t ddb_av_doc_count(const av_doc *doc)
{
    return doc->nattrs;
}

const ddb_jnode *ddb_av_doc_attr(const av_doc *doc, size_t i)
{
    return doc->index[i];
}

/* The place of the member named k[0..n) among count sorted so, or count. */
static size_t member_at(const ddb_jnode *const *m, size_t count, const char *k, size_t n)
{
    size_t lo = 0, hi = count, i;
    if (count <= AV_SMALL_MAP) {
        for (i = 0; i < count; i++)
            if (m[i]->keylen == n && memcmp(m[i]->key, k, n) == 0)
                return i;
        return count;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = memcmp(m[mid]->key, k, m[mid]->keylen < n ? m[mid]->keylen : n);
        if (r == 0)
            r = m[mid]->keylen < n ? -1 : (m[mid]->keylen > n);
        if (r == 0)
            return mid;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return count;
}

const ddb_jnode *ddb_av_member_find(const ddb_jnode *const *m, size_t count, const char *k,
                                    size_t n)
{
    size_t i = member_at(m, count, k, n);
    return i < count ? m[i] : NULL;
}

const ddb_jnode *ddb_av_doc_find(const av_doc *doc, const char *k, size_t n)
{
    return ddb_av_member_find(doc->index, doc->nattrs, k, n);
}

size_t ddb_av_doc_find_at(const av_doc *doc, const char *k, size_t n)
{
    return member_at(doc->index, doc->nattrs, k, n);
}

int ddb_av_doc_regular(const av_doc *doc)
{
    return doc->regular;
}

/* doc[name]: the attribute's AttributeValue, made now (nil when there is none). */
static int doc_index(lua_State *L)
{
    const av_doc *doc = ddb_av_doc_test(L, 1);
    const ddb_jnode *c;
    size_t n;
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : NULL;
    if (doc == NULL || k == NULL || (c = ddb_av_doc_find(doc, k, n)) == NULL)
        return 0;
    ddb_json_push_node(L, c);
    return 1;
}

static int doc_tostring(lua_State *L)
{
    const av_doc *doc = ddb_av_doc_test(L, 1);
    lua_pushfstring(L, "ddb item (%d attributes)", doc ? (int)doc->nattrs : 0);
    return 1;
}

/* core.item_av(item) -> the AttributeValue map of an item doc; any other value as it is. */
int ddb_av_lua_item_av(lua_State *L)
{
    const av_doc *doc = ddb_av_doc_test(L, 1);
    lua_settop(L, 1);
    if (doc != NULL && doc->item != NULL)
        ddb_json_push_node(L, doc->item);
    return 1;
}

void ddb_av_doc_register(lua_State *L)
{
    ddb_compat_newmetatable(L, AV_DOC_MT);
    lua_pushcfunction(L, doc_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, doc_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}
