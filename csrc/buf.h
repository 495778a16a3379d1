/* A growable byte buffer: the one way the core builds strings. */
#ifndef DDB_BUF_H
#define DDB_BUF_H

#include <stddef.h>
#include <string.h>
#include "visibility.h"

DDB_HIDDEN_BEGIN

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
    char *fixed;    /* the caller's storage the buffer started in (not freed), or NULL */
} buf;

void ddb_buf_init(buf *b);
/* Starts in the caller's storage (cap bytes, on its stack): no allocation while the contents
 * fit; growth beyond moves them to the heap. ddb_buf_free frees only what was allocated. Not
 * for secrets: ddb_buf_wipe clears only where the contents are now. */
void ddb_buf_init_in(buf *b, char *storage, size_t cap);
/* A read-only view of n bytes at p, for what reads a buf: never grown or freed. */
buf ddb_buf_view(char *p, size_t n);
void ddb_buf_free(buf *b);
/* Clears the contents with zeros before freeing: for anything derived from a secret. */
void ddb_buf_wipe(buf *b);
/* All appenders return 0 on success, -1 when memory runs out (the buffer is left valid). */
int ddb_buf_reserve(buf *b, size_t extra);
int ddb_buf_add_slow(buf *b, const void *p, size_t n);
int ddb_buf_adds(buf *b, const char *s);

/* The appenders the encoders call per value and per character: inline while there is room. */
static inline int buf_add(buf *b, const void *p, size_t n)
{
    if (n < b->cap - b->len) {   /* leaves room for ddb_buf_cstr's terminator */
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return ddb_buf_add_slow(b, p, n);
}

static inline int buf_addc(buf *b, char c)
{
    if (b->len + 1 < b->cap) {
        b->data[b->len++] = c;
        return 0;
    }
    return ddb_buf_add_slow(b, &c, 1);
}
/* ddb_buf_reserve, inline while there is room: afterwards extra bytes (and the terminator's
 * one) can be written at data + len directly. */
static inline int buf_room(buf *b, size_t extra)
{
    return extra < b->cap - b->len ? 0 : ddb_buf_reserve(b, extra);
}

int ddb_buf_addhex(buf *b, const unsigned char *p, size_t n);
/* NUL-terminates without counting the terminator in len. */
int ddb_buf_cstr(buf *b);

DDB_HIDDEN_END

#endif
