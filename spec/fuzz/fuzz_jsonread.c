/* libFuzzer target: ddb_jdoc_read, the JSON reader of every answer, against cJSON (a second,
 * independent reader; the core does not link it). Plain C, no Lua. Checked: what we accept
 * cJSON accepts too and reads to the same tree (strings byte for byte, numbers to the same
 * double); what cJSON accepts and prints, we read back to the same tree unless it is one of
 * our documented refusals (invalid UTF-8, \u0000, nesting beyond the bound); errors point
 * inside the text; nodes and texts lie inside what was allocated; a read that starts in the
 * caller's storage (ddb_jdoc_read_in, a few nodes, so most inputs outgrow it) reads the same. */
#include "fuzz_lua.h"
#include "jsonread.h"
#include "number.h"
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>

/* near: within a few units in the last place, as cJSON prints only that exactly (it keeps
 * 15 digits when they read back within its epsilon) */
static int same_double(double a, double b, int near)
{
    if (a == b || (isnan(a) && isnan(b)))
        return 1;
    return near && fabs(a - b) <= fmax(fabs(a), fabs(b)) * 4 * DBL_EPSILON;
}

/* 1 when the node subtree at j equals the cJSON value c */
static int same_tree(const ddb_jnode *j, const cJSON *c, int near)
{
    const ddb_jnode *k;
    const cJSON *e;
    uint32_t i;
    switch (c->type & 0xFF) {
    case cJSON_NULL: return j->type == DDB_J_NULL;
    case cJSON_False: return j->type == DDB_J_FALSE;
    case cJSON_True: return j->type == DDB_J_TRUE;
    case cJSON_Number:
        if (isinf(c->valuedouble) || isnan(c->valuedouble))
            if (j->type == DDB_J_NULL)
                return 1;   /* cJSON prints infinity as null */
        return j->type == DDB_J_NUMBER && same_double(ddb_number_read(j->s, j->len),
                                                       c->valuedouble, near);
    case cJSON_String:
        return j->type == DDB_J_STRING && strlen(c->valuestring) == j->len &&
               memcmp(c->valuestring, j->s, j->len) == 0;
    case cJSON_Array:
    case cJSON_Object:
        if (j->type != ((c->type & 0xFF) == cJSON_Array ? DDB_J_ARRAY : DDB_J_OBJECT))
            return 0;
        for (i = 0, k = j + 1, e = c->child; i < j->len; i++, k += k->skip, e = e->next) {
            if (e == NULL || !same_tree(k, e, near))
                return 0;
            if (j->type == DDB_J_OBJECT && (strlen(e->string) != k->keylen ||
                                            memcmp(e->string, k->key, k->keylen) != 0))
                return 0;
        }
        return e == NULL;
    default:
        return 0;
    }
}

static cJSON *cjson_whole(const char *s, size_t n)
{
    const char *end = NULL;
    cJSON *c = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (c == NULL)
        return NULL;
    while (end < s + n && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (end != s + n) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

static void check_doc(const ddb_jdoc *d, size_t n)
{
    size_t i;
    FUZZ_CHECK(d->count >= 1 && d->count <= d->cap, "count %zu cap %zu", d->count, d->cap);
    FUZZ_CHECK(d->nodes[0].skip == d->count, "root skip %u of %zu", d->nodes[0].skip, d->count);
    FUZZ_CHECK(d->text_used <= n, "text %zu of %zu", d->text_used, n);
    for (i = 0; i < d->count; i++) {
        const ddb_jnode *j = &d->nodes[i];
        FUZZ_CHECK(j->skip >= 1 && i + j->skip <= d->count, "node %zu skip %u", i, j->skip);
        FUZZ_CHECK(j->at < n, "node %zu at %u of %zu", i, j->at, n);
    }
}

/* the read into the caller's nodes gives what the read on the heap gave */
static void check_read_in(const ddb_jdoc *d, int rc, const char *s, size_t size)
{
    ddb_jnode local[256];
    ddb_jdoc e;
    /* at the reader's first estimate or a little above it: dense inputs outgrow it */
    size_t i, nlocal = size / 24 + 16 + size % 3, first = size / 24 + 16;
    int rc_in;
    if (nlocal > 256)
        nlocal = 256;
    rc_in = ddb_jdoc_read_in(&e, local, nlocal, s, size, 0);
    FUZZ_CHECK(rc_in == rc, "read_in returned %d, read %d", rc_in, rc);
    if (rc == 0) {
        FUZZ_CHECK(e.count == d->count, "read_in %zu nodes, read %zu", e.count, d->count);
        FUZZ_CHECK((e.nodes == local) == (first <= nlocal && e.count <= nlocal),
                   "%zu nodes, %zu local", e.count, nlocal);
        for (i = 0; i < d->count; i++) {
            const ddb_jnode *a = &d->nodes[i], *b = &e.nodes[i];
            FUZZ_CHECK(a->type == b->type && a->len == b->len && a->skip == b->skip &&
                       a->at == b->at && a->keylen == b->keylen && a->key_at == b->key_at,
                       "node %zu differs", i);
            FUZZ_CHECK((a->s == NULL) == (b->s == NULL) &&
                       (a->s == NULL || memcmp(a->s, b->s, a->len) == 0), "node %zu text", i);
            FUZZ_CHECK((a->key == NULL) == (b->key == NULL) &&
                       (a->key == NULL || memcmp(a->key, b->key, a->keylen) == 0),
                       "node %zu key", i);
        }
    } else {
        FUZZ_CHECK(e.err_at == d->err_at && strcmp(e.err, d->err) == 0, "errors differ");
    }
    ddb_jdoc_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    ddb_jdoc d;
    cJSON *c;
    int rc = ddb_jdoc_read(&d, s, size, 0);
    FUZZ_CHECK(rc == 0 || rc == -1, "read returned %d", rc);
    check_read_in(&d, rc, s, size);
    c = cjson_whole(s, size);
    if (rc == 0) {
        check_doc(&d, size);
        FUZZ_CHECK(c != NULL, "we read what cJSON refuses: '%.*s'", (int)size, s);
        FUZZ_CHECK(same_tree(d.nodes, c, 0), "trees differ: '%.*s'", (int)size, s);
    } else {
        FUZZ_CHECK(d.err_at <= size, "error at %zu of %zu", d.err_at, size);
        FUZZ_CHECK(d.err[0] != '\0', "error without a message");
    }
    ddb_jdoc_free(&d);
    if (c != NULL) {
        /* cJSON's own printing is strict JSON: we must read it, bar our refusals */
        char *printed = cJSON_PrintUnformatted(c);
        if (printed != NULL) {
            size_t pn = strlen(printed);
            rc = ddb_jdoc_read(&d, printed, pn, 0);
            if (rc == 0) {
                check_doc(&d, pn);
                FUZZ_CHECK(same_tree(d.nodes, c, 1), "printed tree differs: '%s'", printed);
            } else {
                FUZZ_CHECK(strstr(d.err, "UTF-8") != NULL || strstr(d.err, "\\u0000") != NULL ||
                           strstr(d.err, "nested more than") != NULL,
                           "we refuse cJSON's printing of '%.*s': %s at %zu", (int)size, s,
                           d.err, d.err_at);
            }
            ddb_jdoc_free(&d);
            free(printed);
        }
        cJSON_Delete(c);
    }
    return 0;
}
