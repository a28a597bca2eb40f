/* A small blocking HTTP/1.1 client for the command line (`tribune space
 * create`, `tribune top`): one request per connection (Connection: close),
 * plain http:// only, a timeout on connect, send and receive.
 * Thread: any; blocks. Memory: the response body is malloc'd for the caller.
 */
#ifndef TRIBUNE_API_CLIENT_H
#define TRIBUNE_API_CLIENT_H

#include <stddef.h>

enum { CLIENT_MAX_RESPONSE = 16 << 20 };

/* Splits "http://HOST[:PORT][/...]" (or "HOST[:PORT]", "[V6]:PORT") into
 * host and port ("80" when absent). 0 or -EINVAL. Pure. */
int client_split_url(const char *url, char *host, size_t hostlen, char *port, size_t portlen);

/* Splits a whole response into its status and body (after the head, cut to
 * Content-Length when given). 0, or -EPROTO when it is not HTTP. Pure. */
int client_parse_response(char *resp, size_t len, int *status, char **body, size_t *body_len);

/* Sends `method path` with an optional body (content_type may be NULL) to
 * the server at `url` and reads the whole answer. Returns 0 with *status and
 * *body (malloc'd, NUL-terminated, free it) or a negative errno with a
 * sentence for a person in `err`. */
int client_request(const char *url, const char *method, const char *path, const char *content_type,
                   const char *body, size_t body_len, int timeout_s, int *status, char **resp_body,
                   size_t *resp_len, char *err, size_t errcap);

#endif
