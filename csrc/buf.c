/* Growable byte buffer. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

void ddb_buf_init(buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->fixed = NULL;
}

void ddb_buf_init_in(buf *b, char *storage, size_t cap)
{
    b->data = b->fixed = storage;
    b->len = 0;
    b->cap = cap;
}

buf ddb_buf_view(char *p, size_t n)
{
    buf v;
    v.data = v.fixed = p;
    v.len = v.cap = n;
    return v;
}

void ddb_buf_free(buf *b)
{
    if (b->data != b->fixed)
        free(b->data);
    ddb_buf_init(b);
}

void ddb_buf_wipe(buf *b)
{
    if (b->data != NULL)
        OPENSSL_cleanse(b->data, b->cap);
    ddb_buf_free(b);
}

int ddb_buf_reserve(buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > (size_t)-1 - b->len - 1)
        return -1;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    if (b->data != b->fixed || b->data == NULL) {
        p = realloc(b->data, cap);
    } else {
        /* out of the caller's storage: the contents move to the heap */
        p = malloc(cap);
        if (p != NULL && b->len > 0)
            memcpy(p, b->data, b->len);
    }
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int ddb_buf_add_slow(buf *b, const void *p, size_t n)
{
    if (ddb_buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int ddb_buf_adds(buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}


int ddb_buf_addhex(buf *b, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    if (ddb_buf_reserve(b, n * 2) != 0)
        return -1;
    for (i = 0; i < n; i++) {
        b->data[b->len++] = digits[p[i] >> 4];
        b->data[b->len++] = digits[p[i] & 15];
    }
    return 0;
}

int ddb_buf_cstr(buf *b)
{
    if (ddb_buf_reserve(b, 0) != 0)
        return -1;
    b->data[b->len] = '\0';
    return 0;
}
