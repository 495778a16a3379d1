/* The JSON reader: bytes to a flat node array in one pass, strictly by RFC 8259. Strings
 * without escapes point into the text; the rest go to one buffer of the text's size, since
 * unescaping never makes a string longer. Errors say where and what was expected. */
#include "jsonread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "utf8.h"

typedef struct reader {
    const unsigned char *base, *p, *end;
    ddb_jdoc *d;
    int max_depth;
} reader;

/* 1 for the bytes a string holds as they are: not '"', not '\\', not a control character */
static const unsigned char plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,    /* 0x20: '"' at 0x22 */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,    /* 0x50: '\\' at 0x5C */
    R16(1), R16(1),
    R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1)
#undef R16
};

/* What the text holds at p, for a message: up to 12 bytes, quoted, controls as '?'. */
static void found_at(const reader *r, const unsigned char *p, char *out, size_t outlen)
{
    size_t i = 0, k = 0;
    if (p >= r->end) {
        snprintf(out, outlen, "the end of the text");
        return;
    }
    out[k++] = '\'';
    while (p + i < r->end && k + 2 < outlen && (i < 12 || (p[i] & 0xC0) == 0x80)) {
        unsigned char c = p[i++];
        out[k++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    out[k++] = '\'';
    out[k] = '\0';
}

/* The text at p is not what the grammar needs there. */
static int expected(reader *r, const unsigned char *p, const char *what)
{
    char found[40];
    found_at(r, p, found, sizeof found);
    snprintf(r->d->err, sizeof r->d->err, "expected %s, found %s", what, found);
    r->d->err_at = (size_t)(p - r->base);
    return -1;
}

/* Well-formed JSON this module still refuses, or an unterminated one. */
static int refused(reader *r, const unsigned char *p, const char *why)
{
    snprintf(r->d->err, sizeof r->d->err, "%s", why);
    r->d->err_at = (size_t)(p - r->base);
    return -1;
}

static void skip_space(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

/* Appends a node; returns its index, or -2 when memory ran out. */
static long add_node(reader *r, int type, const unsigned char *at)
{
    ddb_jdoc *d = r->d;
    ddb_jnode *n;
    if (d->count == d->cap) {
        size_t cap = d->cap * 2;
        ddb_jnode *grown;
        if (d->nodes != d->local) {
            grown = realloc(d->nodes, cap * sizeof *grown);
        } else if ((grown = malloc(cap * sizeof *grown)) != NULL) {
            memcpy(grown, d->nodes, d->count * sizeof *grown);   /* out of the caller's */
        }
        if (grown == NULL)
            return -2;
        d->nodes = grown;
        d->cap = cap;
    }
    n = &d->nodes[d->count];
    n->s = NULL;
    n->key = NULL;
    n->len = n->keylen = 0;
    n->skip = 1;
    n->at = n->key_at = (uint32_t)(at - r->base);
    n->type = (unsigned char)type;
    return (long)d->count++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One escape after the backslash at q (q[1] is its letter), written at *o; returns the
 * bytes of text it took, or -1. */
static long unescape(reader *r, const unsigned char *q, char **o)
{
    static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    const char *m;
    unsigned cp, low;
    if (q + 1 >= r->end)
        return expected(r, q + 1, "an escape (one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
    if (q[1] != 'u') {
        for (m = simple; *m != '\0'; m += 2)
            if ((unsigned char)m[0] == q[1]) {
                *(*o)++ = m[1];
                return 2;
            }
        return expected(r, q + 1, "an escape (one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
    }
    if (r->end - q < 6 || hex4(q + 2, &cp) != 0)
        return expected(r, q + 2, "four hex digits after \\u");
    if (cp == 0)
        return refused(r, q, "a string holds \\u0000 (a NUL character), which this module "
                             "does not represent");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return expected(r, q, "a code point (a lone low surrogate is not one)");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (r->end - q < 12 || q[6] != '\\' || q[7] != 'u' || hex4(q + 8, &low) != 0 ||
            low < 0xDC00 || low > 0xDFFF)
            return expected(r, q + 6, "the low half of a surrogate pair (\\uDC00-\\uDFFF)");
        *o += put_utf8(*o, 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00));
        return 12;
    }
    *o += put_utf8(*o, cp);
    return 6;
}

/* The string whose opening quote is at r->p; sets *s, *len and moves past it. */
static int read_string(reader *r, const char **s, uint32_t *len)
{
    const unsigned char *open = r->p, *q = r->p + 1, *run;
    char *o = NULL, *start = NULL;
    for (;;) {
        unsigned hi = 0;
        run = q;
        while (q < r->end && plain[*q])
            hi |= *q++;
        if ((hi & 0x80) && !ddb_utf8_valid((const char *)run, (size_t)(q - run))) {
            while (run < q && *run < 0x80)
                run++;
            return refused(r, run, "the text is not valid UTF-8");
        }
        if (o != NULL) {
            memcpy(o, run, (size_t)(q - run));
            o += q - run;
        }
        if (q >= r->end) {
            char what[80];
            snprintf(what, sizeof what, "'\"' closing the string that starts at byte %lu",
                     (unsigned long)(open - r->base) + 1);
            return expected(r, q, what);
        }
        if (*q == '"')
            break;
        if (*q != '\\')
            return expected(r, q, "a character (control characters must be escaped)");
        if (o == NULL) {
            /* the first escape: from here the string is built in the text buffer */
            ddb_jdoc *d = r->d;
            if (d->text == NULL && (d->text = malloc((size_t)(r->end - r->base))) == NULL)
                return -2;
            start = o = d->text + d->text_used;
            memcpy(o, open + 1, (size_t)(q - open - 1));
            o += q - open - 1;
        }
        {
            long took = unescape(r, q, &o);
            if (took < 0)
                return (int)took;
            q += took;
        }
    }
    if (o == NULL) {
        *s = (const char *)open + 1;
        *len = (uint32_t)(q - open - 1);
    } else {
        *s = start;
        *len = (uint32_t)(o - start);
        r->d->text_used += (size_t)(o - start);
    }
    r->p = q + 1;
    return 0;
}

static int is_digit(const reader *r, const unsigned char *p)
{
    return p < r->end && *p >= '0' && *p <= '9';
}

static const unsigned char *digits(const reader *r, const unsigned char *p)
{
    while (is_digit(r, p))
        p++;
    return p;
}

static int read_number(reader *r, long idx)
{
    const unsigned char *start = r->p, *p = r->p;
    if (*p == '-')
        p++;
    if (!is_digit(r, p))
        return expected(r, p, "a digit");
    p = *p == '0' ? p + 1 : digits(r, p);
    if (p < r->end && *p == '.') {
        if (!is_digit(r, p + 1))
            return expected(r, p + 1, "a digit after the decimal point");
        p = digits(r, p + 1);
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        const unsigned char *e = p + 1;
        if (e < r->end && (*e == '+' || *e == '-'))
            e++;
        if (!is_digit(r, e))
            return expected(r, p + 1, "the exponent's digits");
        p = digits(r, e);
    }
    r->d->nodes[idx].s = (const char *)start;
    r->d->nodes[idx].len = (uint32_t)(p - start);
    r->p = p;
    return 0;
}

static int read_value(reader *r, int depth, const char *key, uint32_t keylen,
                      const unsigned char *key_at);

/* The members or elements of the container at index idx (r->p after its bracket). */
static int read_container(reader *r, long idx, int depth)
{
    int is_object = r->d->nodes[idx].type == DDB_J_OBJECT;
    unsigned char close = is_object ? '}' : ']';
    uint32_t children = 0;
    int rc;
    if (depth >= r->max_depth) {
        char why[64];
        snprintf(why, sizeof why, "nested more than %d levels deep", r->max_depth);
        return refused(r, r->p - 1, why);
    }
    skip_space(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return 0;
    }
    for (;;) {
        if (is_object) {
            const unsigned char *key_at = r->p;
            const char *key;
            uint32_t keylen;
            if (r->p >= r->end || *r->p != '"')
                return expected(r, r->p, "a member name in double quotes");
            if ((rc = read_string(r, &key, &keylen)) != 0)
                return rc;
            skip_space(r);
            if (r->p >= r->end || *r->p != ':')
                return expected(r, r->p, "':' after the member name");
            r->p++;
            skip_space(r);
            rc = read_value(r, depth + 1, key, keylen, key_at);
        } else {
            rc = read_value(r, depth + 1, NULL, 0, NULL);
        }
        if (rc != 0)
            return rc;
        children++;
        skip_space(r);
        if (r->p < r->end && *r->p == close) {
            r->p++;
            break;
        }
        if (r->p >= r->end || *r->p != ',')
            return expected(r, r->p, is_object ? "',' or '}'" : "',' or ']'");
        r->p++;
        skip_space(r);
    }
    r->d->nodes[idx].len = children;
    r->d->nodes[idx].skip = (uint32_t)(r->d->count - (size_t)idx);
    return 0;
}

static int literal(reader *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return expected(r, r->p, "a value (an object, array, string, number, true, false "
                                 "or null)");
    r->p += n;
    return 0;
}

static int read_value(reader *r, int depth, const char *key, uint32_t keylen,
                      const unsigned char *key_at)
{
    long idx;
    int type, rc;
    if (r->p >= r->end)
        return expected(r, r->p, "a value (an object, array, string, number, true, false or "
                                 "null)");
    switch (*r->p) {
    case '{': type = DDB_J_OBJECT; break;
    case '[': type = DDB_J_ARRAY; break;
    case '"': type = DDB_J_STRING; break;
    case 't': type = DDB_J_TRUE; break;
    case 'f': type = DDB_J_FALSE; break;
    case 'n': type = DDB_J_NULL; break;
    default: type = DDB_J_NUMBER; break;
    }
    idx = add_node(r, type, r->p);
    if (idx < 0)
        return (int)idx;
    if (key_at != NULL)
        r->d->nodes[idx].key_at = (uint32_t)(key_at - r->base);
    r->d->nodes[idx].key = key;
    r->d->nodes[idx].keylen = keylen;
    switch (type) {
    case DDB_J_OBJECT:
    case DDB_J_ARRAY:
        r->p++;
        return read_container(r, idx, depth);
    case DDB_J_STRING: {
        const char *s;
        uint32_t len;
        if ((rc = read_string(r, &s, &len)) != 0)
            return rc;
        r->d->nodes[idx].s = s;
        r->d->nodes[idx].len = len;
        return 0;
    }
    case DDB_J_TRUE:
        return literal(r, "true", 4);
    case DDB_J_FALSE:
        return literal(r, "false", 5);
    case DDB_J_NULL:
        return literal(r, "null", 4);
    default:
        if (*r->p != '-' && (*r->p < '0' || *r->p > '9'))
            return expected(r, r->p, "a value (an object, array, string, number, true, "
                                     "false or null)");
        return read_number(r, idx);
    }
}

int ddb_jdoc_read(ddb_jdoc *d, const char *s, size_t n, int max_depth)
{
    return ddb_jdoc_read_in(d, NULL, 0, s, n, max_depth);
}

int ddb_jdoc_read_in(ddb_jdoc *d, ddb_jnode *local, size_t nlocal, const char *s, size_t n,
                     int max_depth)
{
    reader r;
    int rc;
    memset(d, 0, sizeof *d);
    r.base = r.p = (const unsigned char *)s;
    r.end = r.base + n;
    r.d = d;
    r.max_depth = max_depth > 0 && max_depth < DDB_JSON_MAX_DEPTH ? max_depth : DDB_JSON_MAX_DEPTH;
    if (n >= UINT32_MAX)
        return refused(&r, r.base, "the text is longer than 4 GiB");
    /* about one node per 24 bytes of DynamoDB JSON; growth doubles from there */
    d->cap = n / 24 + 16;
    if (d->cap > 65536)
        d->cap = 65536;
    if (d->cap <= nlocal) {
        d->nodes = d->local = local;
        d->cap = nlocal;
    } else if ((d->nodes = malloc(d->cap * sizeof *d->nodes)) == NULL) {
        return -2;
    }
    skip_space(&r);
    rc = read_value(&r, 0, NULL, 0, NULL);
    if (rc == 0) {
        skip_space(&r);
        if (r.p < r.end)
            rc = expected(&r, r.p, "the end of the text");
    }
    return rc;
}

void ddb_jdoc_free(ddb_jdoc *d)
{
    if (d->nodes != d->local)
        free(d->nodes);
    free(d->text);
    d->nodes = NULL;
    d->text = NULL;
    d->count = d->cap = 0;
}

void ddb_jdoc_message(const ddb_jdoc *d, char *out, size_t outlen)
{
    /* a grammar error reads "not valid JSON at byte N: expected ..."; a refusal of valid
     * JSON "at byte N: ..." */
    int grammar = strncmp(d->err, "expected ", 9) == 0;
    snprintf(out, outlen, "%sat byte %lu: %s", grammar ? "not valid JSON " : "",
             (unsigned long)d->err_at + 1, d->err);
}
