/*
** redis.h
** The Redis driver's C side: a connection that many tasks share. Their
** commands are written together once per round of the scheduler and the
** replies, parsed by hiredis's reader, are matched to them in order.
** See LICENSE
*/

#ifndef AIO_REDIS_H
#define AIO_REDIS_H

#include <hiredis/hiredis.h>

#include "aio.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* RedisCall.status when the connection was closed (not lost). */
#define AIO_REDIS_CLOSED 1

/* RedisCall.state */
enum {
  CALL_QUEUED,         /* in the FIFO; its task waits (or will resume) */
  CALL_ABANDONED,      /* in the FIFO; nobody wants its replies any more */
  CALL_DONE,           /* answered (or failed): its continuation takes it */
  CALL_SPARE           /* unused, in the spare list */
};

/*
** A command, or a batch of them, sent on a connection and waiting for its
** `want` replies. The connection owns it from its creation (conn_call) to
** its release: it is in exactly one of the connection's lists (fifo, done,
** spare), so what a killed task never took is still freed. The task that
** sent it waits linked in `waiters` and finds it through its
** continuation's context. A call whose task gave up (cancelled, timed out)
** stays in the FIFO, ABANDONED: a tombstone whose replies are read and
** dropped, so no task ever gets another's reply.
*/
typedef struct RedisCall {
  Link link;             /* in conn->fifo, conn->done or conn->spare */
  Link waiters;          /* the wait link of the task waiting for it */
  redisReply *one;       /* the reply, when want == 1 */
  redisReply **many;     /* want replies, when want > 1 (malloc'd) */
  uint32_t want, got;    /* replies expected, replies received */
  int status;            /* 0, AIO_REDIS_CLOSED, or a UV_E* code (lost) */
  uint8_t state;         /* CALL_* */
} RedisCall;

/*
** A connection to a Redis server (class aio.redis.Conn), over TCP or a
** unix socket. Reading is always on while it is open: replies complete
** calls in FIFO order, and in pub/sub mode messages go to a queue of their
** own (reading pauses while that queue is full and no call waits).
** Commands are appended to `out` and written by one deferred flush at the
** end of the scheduler's round; while a write is in flight, what is
** written lives in `wbuf` and new commands collect in `out`.
*/
typedef struct RedisConn {
  IoHandle io;
  union {
    uv_tcp_t tcp;        /* redis:// */
    uv_pipe_t pipe;      /* unix: */
  } h;                   /* a uv_stream_t: aio_redis_stream(c) */
  redisReader *reader;
  Buf out;               /* commands not yet handed to the kernel */
  Buf wbuf;              /* the bytes of the write in flight */
  uv_write_t wreq;
  Deferred flush;        /* writes `out` before the loop next polls */
  Link fifo;             /* RedisCall: sent, waiting for replies, in order */
  Link done;             /* RedisCall: answered, not taken yet */
  Link spare;            /* RedisCall: for reuse */
  Link msg_waiters;      /* tasks waiting in conn:message() */
  redisReply **msgs;     /* pub/sub messages: a ring (capacity mcap) */
  uint32_t mhead, mcount, mcap;
  uint32_t nfifo;        /* calls in the FIFO */
  uint32_t nspare;       /* calls in the spare list */
  char *scratch;         /* the loop's shared read buffer */
  double timeout;        /* seconds a call waits for its replies; 0: none */
  int err;               /* what broke the connection (UV_E*), or 0 */
  char errmsg[128];      /* the reader's message for a protocol error */
  uint8_t connected;     /* the connect request succeeded */
  uint8_t reading;       /* uv_read_start is on */
  uint8_t writing;       /* wreq is in flight */
  uint8_t pubsub;        /* message replies go to the message queue */
} RedisConn;

#define aio_redis_stream(c) ((uv_stream_t *)&(c)->h)
#define aio_redis_handle(c) ((uv_handle_t *)&(c)->h)

/* redis_conn.c: the connection */
extern const AioClass aio__redis_conn_class;
RedisConn *aio__redis_self (lua_State *L);
RedisConn *aio__redis_check (lua_State *L);
int aio__redis_lost_error (lua_State *L, RedisConn *c);
RedisCall *aio__redis_call_new (RedisConn *c, uint32_t want);
void aio__redis_call_free (RedisConn *c, RedisCall *call);
void aio__redis_sent (RedisConn *c);
int aio__redis_message_take (RedisConn *c, redisReply **r);

/* redis_call.c: commands and their replies (methods of aio.redis.Conn) */
int aio__redis_command (lua_State *L);
int aio__redis_commands (lua_State *L);
int aio__redis_message (lua_State *L);

/* redis_reply.c: replies as Lua values */
void aio__redis_push_reply (lua_State *L, const redisReply *r,
                            const char *command);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
