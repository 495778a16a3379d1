/* JSON text (RFC 8259, strictly) read into one flat array of nodes, with no allocation per
 * value and no Lua: what the decoders in json.c and av/unmarshal.c walk. */
#ifndef DDB_JSONREAD_H
#define DDB_JSONREAD_H

#include <stddef.h>
#include <stdint.h>
#include "visibility.h"

DDB_HIDDEN_BEGIN

enum { DDB_J_NULL, DDB_J_FALSE, DDB_J_TRUE, DDB_J_NUMBER, DDB_J_STRING, DDB_J_ARRAY,
       DDB_J_OBJECT };

/* Nodes are in document order: a container's first child, if any, is the node after it, and
 * each node's next sibling is skip nodes after it. Texts are not NUL-terminated. */
typedef struct ddb_jnode {
    const char *s;      /* NUMBER, STRING: the text (a string's unescaped) */
    const char *key;    /* an object member's name (unescaped), else NULL */
    uint32_t len;       /* bytes of s, or a container's number of children */
    uint32_t keylen;
    uint32_t skip;      /* nodes in this subtree, itself included */
    uint32_t at;        /* byte offset of the value */
    uint32_t key_at;    /* byte offset of the member's name (its opening quote) */
    unsigned char type;
} ddb_jnode;

typedef struct ddb_jdoc {
    ddb_jnode *nodes;   /* nodes[0] is the document's value */
    size_t count, cap;
    ddb_jnode *local;   /* the caller's storage the nodes started in (not freed), or NULL */
    char *text;         /* unescaped strings; allocated once, when the first escape is met */
    size_t text_used;
    size_t err_at;      /* on failure: the 0-based offset the message is about */
    char err[192];      /* on failure: "expected ..., found ..." or another reason */
} ddb_jdoc;

#define DDB_JSON_MAX_DEPTH 200   /* nesting refused beyond this, whatever the caller asks */

/* Reads s[0..n) as one JSON value (whitespace around it allowed). Returns 0, or -1 with
 * d->err and d->err_at set (nothing to free then but ddb_jdoc_free is safe), or -2 when
 * memory ran out. Refuses invalid UTF-8, escaped NULs and nesting beyond max_depth. */
int ddb_jdoc_read(ddb_jdoc *d, const char *s, size_t n, int max_depth);
/* ddb_jdoc_read, the nodes in the caller's storage (nlocal nodes, on its stack) while they
 * fit, so a typical answer is read with no allocation; d is valid only while local is. */
int ddb_jdoc_read_in(ddb_jdoc *d, ddb_jnode *local, size_t nlocal, const char *s, size_t n,
                     int max_depth);
enum { DDB_JDOC_LOCAL = 64 };   /* nodes a caller keeps on its stack: a 1.5 KB answer */
void ddb_jdoc_free(ddb_jdoc *d);

/* Writes "not valid JSON at byte N: <err>" for a failed read (N 1-based). */
void ddb_jdoc_message(const ddb_jdoc *d, char *out, size_t outlen);

DDB_HIDDEN_END

#endif
