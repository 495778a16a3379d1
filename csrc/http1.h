/* HTTP/1.1 answers read from bytes: the head (status, framing, connection) and chunked
 * bodies. No I/O: the libcurl transport's one-call path feeds it what it received. */
#ifndef DDB_HTTP1_H
#define DDB_HTTP1_H

#include <stddef.h>
#include "buf.h"

/* The longest head accepted: DynamoDB's are a few hundred bytes. */
#define HTTP1_MAX_HEAD 65536

typedef struct http1_head {
    int status;
    size_t head_len;           /* the status line and headers, blank line included */
    long long content_length;  /* -1 when the answer gives none */
    int chunked;               /* Transfer-Encoding ends in chunked */
    int close;                 /* the connection ends with this answer */
    int no_body;               /* 1xx, 204 and 304 carry no body whatever the headers say */
} http1_head;

/* Parses the head at the start of p[0..len): 1 when it is complete (h filled in), 0 when more
 * bytes are needed, -1 when it is not an HTTP/1.x answer or is malformed (a Content-Length
 * that is not a number or two that differ, a head over HTTP1_MAX_HEAD). */
int http1_parse_head(const char *p, size_t len, http1_head *h);

/* Where a chunked body's decoding stands, so that it resumes as bytes arrive. */
typedef struct http1_chunks {
    size_t pos;                /* next byte of the raw body to read */
    int state;
    unsigned long long left;   /* bytes of the current chunk still to copy */
} http1_chunks;

void http1_chunks_init(http1_chunks *c);
/* Decodes the chunked body p[0..len) from c->pos on, appending the data to out: 1 when the
 * last chunk and the trailers are complete (c->pos is then the end of the body), 0 when more
 * bytes are needed, -1 when malformed, -2 when memory runs out. */
int http1_dechunk(http1_chunks *c, const char *p, size_t len, buf *out);

#endif
