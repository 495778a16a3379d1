/* One HTTP/1.1 answer put together from a connection's bytes as they arrive: its framing
 * (Content-Length, chunked, or to the close), its limits (the head HTTP1_MAX_HEAD, the body
 * max) and what a failure means for the request, for every transport that reads HTTP itself
 * (wire.c over libcurl, ddb.transport.ngx over cosockets). No I/O. */
#ifndef DDB_ANSWER_H
#define DDB_ANSWER_H

#include <stddef.h>
#include "buf.h"
#include "http1.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

typedef struct answer {
    buf *in;                 /* the answer as received: the head, then the raw body */
    buf *body;               /* a chunked answer's body, decoded */
    size_t max;              /* the longest body accepted */
    http1_head head;         /* valid once have_head */
    http1_chunks chunks;
    int have_head;
    size_t end;              /* where the answer ends in in, once complete */
    int overrun;             /* ddb_answer_feed was given bytes past the answer's end */
} answer;

/* What ddb_answer_received and ddb_answer_closed return besides these: one of the ANSWER_* failures
 * below (negative), which ddb_answer_failure describes. */
enum { ANSWER_MORE = 0, ANSWER_DONE = 1 };
enum {
    ANSWER_NO_MEMORY = -1,
    ANSWER_MALFORMED = -2,        /* not an HTTP/1.x answer, or a bad head */
    ANSWER_BAD_CHUNKS = -3,       /* a malformed chunked body */
    ANSWER_HEAD_TOO_LARGE = -4,
    ANSWER_LENGTH_TOO_LARGE = -5, /* a Content-Length over max, refused before its body */
    ANSWER_CHUNKS_TOO_LARGE = -6, /* a chunk (decided on its size line) or trailers over it */
    ANSWER_CLOSE_TOO_LARGE = -7,  /* a body running to the close past max */
    ANSWER_CLOSED_EMPTY = -8,     /* the server closed before a byte of the answer */
    ANSWER_CLOSED_SHORT = -9      /* the server closed before the answer was complete */
};

/* Starts reading an answer into in and body (emptied; their memory is kept). */
void ddb_answer_start(answer *a, buf *in, buf *body, size_t max);
/* Where the next bytes received go and how many may go there (*room, at least 1): NULL when
 * memory runs out. A body that runs to the close is read one byte past max, no further. */
char *ddb_answer_space(answer *a, size_t *room);
/* n (> 0) bytes were written at ddb_answer_space: ANSWER_MORE, ANSWER_DONE or a failure. */
int ddb_answer_received(answer *a, size_t n);
/* The same for n bytes at p, copied in (for a reader that receives into its own memory). */
int ddb_answer_feed(answer *a, const char *p, size_t n);
/* The server closed the connection: ANSWER_DONE for a body that runs to the close, else a
 * failure. */
int ddb_answer_closed(answer *a);
/* Describes failure r (the request has left, so every failure is applied = "maybe"): the
 * error code ("NetworkError" or "AnswerTooLarge"), the retry class and a message. */
void ddb_answer_failure(const answer *a, int r, const char **code, const char **retry_class,
                    char *message, size_t size);
/* A complete answer's body (valid until the next ddb_answer_start on the same buffers). */
const char *ddb_answer_body(const answer *a, size_t *len);
/* Whether the connection can carry another request: the head does not close it and no byte
 * came after the answer (bytes that belong to no request put the connection out of step). */
int ddb_answer_keep(const answer *a);

DDB_HIDDEN_END

#endif
