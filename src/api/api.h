/* JSON API and web handlers. Each answers the request (conn_respond*) before
 * returning. Thread: the media loop. */
#ifndef TRIBUNE_API_API_H
#define TRIBUNE_API_API_H

#include <stddef.h>

struct node;
struct conn;
struct cJSON;
struct space_record;

void api_index(struct node *n, struct conn *c);
/* GET /api/spaces (list) and POST /api/spaces (create). */
void api_spaces(struct node *n, struct conn *c);
/* Looks up space `id` (len bytes) in the registry into *rec: 0, or answers
 * 404 on `c` and returns -ENOENT. */
int api_find_space(struct node *n, struct conn *c, const char *id, size_t len,
                   struct space_record *rec);
/* GET /api/spaces/{id}. */
void api_space(struct node *n, struct conn *c, const char *id, size_t len);

/* GET /api/node: workers, restarts, CPU seconds (master + running workers),
 * refusals by reason (master + workers' last reports), uptime. */
void api_node(struct node *n, struct conn *c);

/* The public view of a space (what GET /api/spaces/{id} answers): never
 * holds a key. NULL when out of memory; the caller deletes it. */
struct cJSON *api_space_json(struct node *n, const struct space_record *r);

/* Decodes standard base64 (OpenSSL's decoder). Returns the decoded length or
 * -1 when the input is invalid or does not fit `cap`. */
int api_base64_decode(const char *in, size_t len, char *out, size_t cap);

#endif
