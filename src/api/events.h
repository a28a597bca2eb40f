/* GET /api/spaces/{id}/events: Server-Sent Events, one update per second with
 * the space's JSON (the object GET /api/spaces/{id} answers).
 *
 *   router -> events_start(conn)  404 unknown space, 503 over EVENTS_MAX_CLIENTS
 *          -> conn_detach: head + first event written at once
 *   1 s timer -> every client: the next event, non-blocking
 *       socket full          -> the rest of the event waits, this second is skipped
 *       error / peer closed  -> closed and freed
 *       no progress for EVENTS_STALL_S seconds -> closed
 *
 * Thread: the master's loop. Memory: one small struct per client plus the
 * unsent tail of at most one event; every client is freed by events_close.
 */
#ifndef TRIBUNE_API_EVENTS_H
#define TRIBUNE_API_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct node;
struct conn;

enum { EVENTS_MAX_CLIENTS = 1000, EVENTS_PERIOD_MS = 1000, EVENTS_STALL_S = 30 };

/* Formats one SSE event "id: ID\ndata: LINE\n...\n" (each line of `data` on
 * its own data: field; CR, LF and CRLF all split lines). Returns the length
 * written (NUL-terminated), or the length needed (like snprintf) when it does
 * not fit `cap`. Pure. */
size_t events_format(char *out, size_t cap, uint64_t id, const char *data, size_t len);

/* Serves the request (answers an error, or takes the socket). */
void events_start(struct node *n, struct conn *c, const char *id, size_t len);
/* Clients connected now. */
size_t events_clients(const struct node *n);
/* Closes every client and frees the module's state (node_close). */
void events_close(struct node *n);

#endif
