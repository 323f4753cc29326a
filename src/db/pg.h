/*
** pg.h
** The PostgreSQL driver (core.pg): libpq's non-blocking API on the aio
** loop. A connection is a small state machine driven by its socket's
** readiness; operations on it take turns (a FIFO of tasks); results are
** decoded into Lua values in C.
** See LICENSE
*/

#ifndef AIO_PG_H
#define AIO_PG_H

#include <libpq-fe.h>

#include "aio.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define PG_CONN_MT "aio.pg.Conn"
#define PG_STMT_MT "aio.pg.Statement"
#define PG_ROWS_MT "aio.pg.Rows"      /* the state of a decoding */

/* User values of a connection object (its IoRef). */
#define PG_UV_STMTS 1    /* sql -> PgStmt userdata: the statement cache */
#define PG_UV_CANCEL 2   /* the last cancel request (PgCancel), or nil */
#define PG_NUV 2

#define PG_MAX_DIMS 6    /* array dimensions (the server's MAXDIM) */

/* Built-in type OIDs the driver knows (pg_type.dat). */
enum {
  PG_BOOL = 16, PG_BYTEA = 17, PG_CHAR = 18, PG_NAME = 19, PG_INT8 = 20,
  PG_INT2 = 21, PG_INT4 = 23, PG_TEXT = 25, PG_OID = 26, PG_JSON = 114,
  PG_FLOAT4 = 700, PG_FLOAT8 = 701, PG_BPCHAR = 1042, PG_VARCHAR = 1043,
  PG_DATE = 1082, PG_TIME = 1083, PG_TIMESTAMP = 1114, PG_TIMESTAMPTZ = 1184,
  PG_TIMETZ = 1266, PG_NUMERIC = 1700, PG_UUID = 2950, PG_JSONB = 3802
};

/* How a value of a column (or an array element) is decoded. */
typedef enum PgKind {
  PK_TEXT,         /* its text form, as a string */
  PK_INT,          /* int2/4/8, oid -> integer */
  PK_FLOAT,        /* float4/8 -> float */
  PK_BOOL,         /* bool -> boolean */
  PK_BYTEA,        /* bytea -> raw bytes */
  PK_JSON,         /* json/jsonb -> string, or decoded (decode_json) */
  PK_ARRAY         /* an array of one of these -> a Lua array */
} PgKind;

/* How a value in binary format is decoded (pg_binary.c): into the Lua
** value its text form decodes to. */
typedef enum PgBin {
  PB_NONE,         /* no binary decoder */
  PB_INT2, PB_INT4, PB_INT8, PB_OID,   /* -> integer */
  PB_FLOAT4, PB_FLOAT8,                /* -> float */
  PB_BOOL,         /* -> boolean */
  PB_BYTEA,        /* -> raw bytes */
  PB_JSON, PB_JSONB,                   /* -> string (or decoded) */
  PB_ARRAY,        /* -> a Lua array */
  /* the rest decode to their text form, rendered from the binary */
  PB_TEXT,         /* text, varchar, name, bpchar: the same bytes */
  PB_NUMERIC, PB_CHAR, PB_UUID,
  PB_DATE, PB_TIME, PB_TIMETZ, PB_TIMESTAMP, PB_TIMESTAMPTZ
} PgBin;

#define pg_bin_is_text(b) ((b) >= PB_TEXT)

/* Result formats of a prepared statement (PgStmt.fmt). */
typedef enum PgFormat {
  PF_TEXT,         /* text: some column has no binary decoder */
  PF_BINARY,       /* binary */
  PF_BINARY_DT,    /* binary while pg__datetime_ok (date/time columns) */
  PF_BINARY_TZ     /* binary while pg__datetime_ok with a fixed time zone
                   ** (timestamptz columns) */
} PgFormat;

#define PG_BIN_TMP 64    /* bytes for the text of a binary value */

/* pg__rows_gc: rows were added, a batch begins, a batch ended. */
enum { PG_GC_PAUSE, PG_GC_BATCH, PG_GC_BATCH_END };

/* Connection states (PgConn.state). */
typedef enum PgState {
  PG_CONNECTING,   /* PQconnectPoll in progress */
  PG_READY,        /* connected, nothing left over */
  PG_ABANDONED,    /* an operation was interrupted mid-way: what is still
                   ** coming must be drained (after the cancel request, if
                   ** one was sent, is done) before anything else */
  PG_BROKEN        /* the connection is lost: every use raises `io` */
} PgState;

/* Operations (PgOp.kind): what a turn on the connection does. */
typedef enum PgOpKind {
  OP_QUERY,        /* a query; the result shaped by PgOp.mode */
  OP_DRAIN,        /* only bring an abandoned connection back to ready */
  OP_COPY_IN,      /* COPY ... FROM STDIN: start, then copy_put/copy_end */
  OP_COPY_OUT,     /* COPY ... TO STDOUT: start, then copy_get */
  OP_COPY_END      /* the end of a COPY: its final result */
} PgOpKind;

/* Result shapes (PgOp.mode). */
typedef enum PgMode {
  PM_ROWS,         /* array of rows with `columns` and `count` */
  PM_ONE,          /* the first row, or nil */
  PM_VALUE,        /* the first column of the first row, or nil */
  PM_COUNT,        /* rows affected (integer) */
  PM_TAG,          /* the command tag (string) */
  PM_COPYEND       /* nil and the rows copied: the end of a COPY OUT */
} PgMode;

/* Phases of an operation (PgOp.phase). */
typedef enum PgPhase {
  PH_START,        /* holds the turn, nothing sent */
  PH_CANCEL,       /* waiting for a cancel request to be done */
  PH_DRAIN,        /* reading what an abandoned operation left */
  PH_FLUSH,        /* libpq still has output to write */
  PH_PREPARED,     /* reading the results of Parse + Describe */
  PH_RESULTS,      /* reading the results of the query */
  PH_COPY,         /* in COPY IN or COPY OUT */
  PH_DONE
} PgPhase;

/*
** A prepared statement of one connection, in a userdata of the
** connection's cache (keyed by its SQL text). Its server-side name is
** unique on the connection. `used` orders the cache (least recently used
** goes first).
*/
typedef struct PgStmt {
  uint64_t used;         /* PgConn.tick at its last use */
  int nparams;
  uint8_t dirty;         /* its text calls functions that change the
                         ** session (advisory locks, set_config) */
  uint8_t fmt;           /* the format of its results (PgFormat) */
  uint8_t simple;        /* not a statement: several statements without
                         ** parameters, sent through the simple protocol */
  char name[24];
  Oid types[1];          /* nparams parameter types (at least one slot) */
} PgStmt;

/*
** The operation holding the turn. Its arguments stay on the stack of the
** task that runs it (1: connection, 2: sql, 3..: parameters, then the
** statement userdata if any), so they live as long as it does.
*/
typedef struct PgOp {
  uint8_t kind;          /* PgOpKind */
  uint8_t mode;          /* PgMode */
  uint8_t phase;         /* PgPhase */
  uint8_t next;          /* the phase after PH_FLUSH */
  uint8_t retried;       /* re-prepared once after a cached plan changed */
  uint8_t copy_misuse;   /* a COPY ran through query(): raise afterwards */
  uint8_t woke;          /* resumed by the socket: read it */
  uint8_t putting;       /* COPY IN: 1 data, 2 the end, not queued yet */
  uint8_t simple;        /* send through the simple protocol */
  uint8_t single;        /* rows come one by one (libpq's single-row
                         ** mode) and are decoded as they come */
  uint8_t rows_done;     /* the statement of the rows at rowsidx ended */
  int rowsidx;           /* stack index of the rows being decoded, or 0 */
  int skip;              /* results to drop first (DEALLOCATEs) */
  int nparams;           /* parameters at stack index 3.. */
  int stmtidx;           /* stack index of the statement userdata, or 0 */
  PGresult *res;         /* the last result that was not an error */
  PGresult *err;         /* the first error result */
  char name[24];         /* the statement being prepared */
} PgOp;

/*
** A connection: an I/O object (class aio.pg.Conn) without a libuv handle
** of its own; its socket is watched by `poll`, a Poller it owns and
** closes before libpq closes the socket.
**
** Turns: one operation at a time holds the connection (`busy`); other
** tasks wait in `turnq`, oldest first, and the turn passes straight to
** the first of them. A task waiting for notifications does not take the
** turn: it waits on the poller beside the operation (`nlisten`).
*/
typedef struct PgConn {
  IoHandle io;
  PGconn *pg;            /* NULL once closed */
  Poller *poll;          /* watches PQsocket(pg); NULL while none */
  int fd;                /* the descriptor `poll` watches, or -1 */
  uint8_t state;         /* PgState */
  uint8_t busy;          /* an operation holds the turn */
  uint8_t pipeline;      /* in libpq's pipeline mode */
  uint8_t dirty;         /* the session may have changed (SET, LISTEN,
                         ** advisory locks, ...): a pool resets it */
  uint8_t need_cancel;   /* abandoned with the server still working */
  uint8_t decode_json;   /* decode json/jsonb results with cjson */
  int tzwest;            /* the session's time zone in seconds west of UTC,
                         ** as of the last pg__datetime_ok */
  Task *owner;           /* the task holding the turn (NULL: none) */
  Link turnq;            /* tasks waiting for the turn */
  unsigned nlisten;      /* tasks waiting for notifications */
  int nsync;             /* pipeline syncs sent, not yet read back */
  unsigned nstmts;       /* statements in the cache */
  unsigned maxstmts;     /* its bound (0: no cache, unnamed statements) */
  uint32_t nextname;     /* for statement names */
  uint64_t tick;         /* statement use counter (LRU) */
  Req *cancel;           /* the cancel request at PG_UV_CANCEL, or NULL */
  PgOp op;
  Buf dealloc;           /* names of statements to DEALLOCATE, NUL-ended */
  Buf scratch;           /* parameter numbers; decoding bytea, arrays */
  Buf abuf;              /* array literals, COPY data being sent */
  const char **pvals;    /* parameter pointers, lengths, formats */
  int *plens, *pfmts;
  int pcap;              /* their capacity */
} PgConn;

/* A cancel request (PQcancel blocks): run on the libuv thread pool. */
typedef struct PgCancel {
  Req r;
  uv_work_t work;
  PGcancel *cancel;      /* freed with the request */
  int ok;                /* PQcancel's result */
  char err[256];
} PgCancel;


/* pg_conn.c */
PgConn *pg__self (lua_State *L);
int pg__wait (lua_State *L, PgConn *c, int events, lua_KFunction k);
int pg__resumed (lua_State *L, PgConn *c);
int pg__begin (lua_State *L, PgConn *c, int kind, int mode,
               const char *what);
void pg__turn_leave (PgConn *c);
void pg__start_cancel (lua_State *L, PgConn *c);

void pg__broken (PgConn *c);
int pg__raise_lost (lua_State *L, PgConn *c, const char *what, PGresult *r);
void pg__op_clear (PgConn *c);

/* pg_query.c */
int pg__op_run (lua_State *L, PgConn *c);
int pg__op_k (lua_State *L, int status, lua_KContext ctx);
int pg__op_lost (lua_State *L, PgConn *c);
int pg__op_wait (lua_State *L, PgConn *c, int events);
int pg__op_interrupted (lua_State *L, PgConn *c, Task *t);
int pg__collect (lua_State *L, PgConn *c, int read);
void pg__push_db_error (lua_State *L, const PGresult *r, const char *sql);
int pg__scan_dirty (const char *sql, size_t len);
int pg__m_query (lua_State *L);
int pg__m_query_one (lua_State *L);
int pg__m_query_value (lua_State *L);
int pg__m_execute (lua_State *L);
int pg__m_command (lua_State *L);
int pg__m_drain (lua_State *L);
int pg__m_result_format (lua_State *L);
int pg__finish (lua_State *L, PgConn *c);

/* pg_value.c */
PgKind pg__kind (Oid type, Oid *elem);
void pg__push_json (lua_State *L, PgConn *c, const char *s, size_t len);
int pg__json_encode (lua_State *L, int idx);
void pg__open_json (lua_State *L);

/* pg_decode.c */
int pg__decode (lua_State *L, PgConn *c, PGresult *r, int mode);
int pg__rows_begin (lua_State *L, const PGresult *r, int nt);
void pg__rows_add (lua_State *L, PgConn *c, const PGresult *r, int rows,
                   int max);
void pg__rows_gc (lua_State *L, int rows, int what);
void pg__rows_end (lua_State *L, int rows, lua_Integer count);
extern const AioClass pg__rows_class;
lua_Integer pg__affected (const PGresult *r);

/* pg_encode.c */
int pg__encode_params (lua_State *L, PgConn *c, int first, int n,
                       const PgStmt *s);
lua_Integer pg__encode_copy_rows (lua_State *L, PgConn *c, int tidx,
                                  lua_Integer from, lua_Integer to,
                                  int ncols);

/* pg_binary.c */
int pg__bin_kind (Oid type, int *elem);
int pg__result_format (const PGresult *d);
int pg__datetime_ok (PgConn *c, int tz);
const char *pg__bin_text (PgConn *c, int b, const char *s, int len,
                          char *tmp, size_t *n);
void pg__push_bin (lua_State *L, PgConn *c, int b, int eb, const char *s,
                   int len);


/* pg_copy.c */
int pg__m_copy_in (lua_State *L);
int pg__m_copy_put (lua_State *L);
int pg__m_copy_end (lua_State *L);
int pg__m_copy_out (lua_State *L);
int pg__m_copy_get (lua_State *L);
int pg__m_copy_abort (lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
