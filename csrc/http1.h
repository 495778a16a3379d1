/* HTTP/1.1 answers read from bytes: the head (status, framing, connection) and chunked
 * bodies, under answer.c (the one-call path, the scheduler, cosockets). No I/O. */
#ifndef DDB_HTTP1_H
#define DDB_HTTP1_H

#include <stddef.h>
#include "buf.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* The longest head accepted, and the longest trailer section of a chunked body: DynamoDB's
 * heads are a few hundred bytes and it sends no trailers. */
#define HTTP1_MAX_HEAD 65536
/* The longest chunk-size line (the size and its extensions). */
#define HTTP1_MAX_CHUNK_LINE 4096

/* What the readers return besides 1 (complete) and 0 (more bytes needed). */
enum { HTTP1_MALFORMED = -1, HTTP1_NO_MEMORY = -2, HTTP1_TOO_LARGE = -3 };

typedef struct http1_head {
    int status;
    size_t head_len;           /* the status line and headers, blank line included */
    long long content_length;  /* -1 when the answer gives none */
    int chunked;               /* Transfer-Encoding ends in chunked */
    int close;                 /* the connection ends with this answer */
    int no_body;               /* 1xx, 204 and 304 carry no body whatever the headers say */
} http1_head;

/* Parses the head at the start of p[0..len): 1 when it is complete (h filled in), 0 when more
 * bytes are needed, HTTP1_MALFORMED when it is not an HTTP/1.x answer or is malformed (a
 * Content-Length that is not a number or two that differ), HTTP1_TOO_LARGE when it has not
 * ended within HTTP1_MAX_HEAD bytes. */
int ddb_http1_parse_head(const char *p, size_t len, http1_head *h);

/* Where a chunked body's decoding stands, so that it resumes as bytes arrive. */
typedef struct http1_chunks {
    size_t pos;                /* next byte of the raw body to read */
    int state;
    unsigned long long left;   /* bytes of the current chunk still to copy */
    size_t max;                /* the longest body accepted (0: no limit but memory) */
    size_t trailer_len;        /* bytes of trailer lines so far */
} http1_chunks;

/* max: the longest decoded body accepted, 0 for no limit. */
void ddb_http1_chunks_init(http1_chunks *c, size_t max);
/* Decodes the chunked body p[0..len) from c->pos on, appending the data to out: 1 when the
 * last chunk and the trailers are complete (c->pos is then the end of the body), 0 when more
 * bytes are needed, HTTP1_MALFORMED, HTTP1_NO_MEMORY, or HTTP1_TOO_LARGE when a chunk would
 * take the body past c->max or the trailers past HTTP1_MAX_HEAD (decided on the chunk's size
 * line, before its data arrives). The caller may drop the bytes before c->pos between calls
 * (moving the rest down and c->pos with it): the decoder keeps no pointer into p. */
int ddb_http1_dechunk(http1_chunks *c, const char *p, size_t len, buf *out);

/* Writes a whole POST request into out (emptied first): the request line for path, the
 * header lines (without their CRLF), Content-Length and the body. 0, or -1 on no memory. */
int ddb_http1_post(buf *out, const char *path, size_t path_len, const char *const *lines,
                   size_t nlines, const char *body, size_t body_len);

DDB_HIDDEN_END

#endif
