/* Replay: one HTTP response serving a recording (its segments, concatenated:
 * a chained Ogg stream) from files, with HEAD, Range (206, several ranges as
 * multipart/byteranges) and 416, on the master's loop.
 *
 *   replay_start(fd, files) --> response head --> pieces: text | file bytes
 *      pread (<= 64 KiB) -> send, <= 256 KiB per wake-up; full socket -> EPOLLOUT
 *
 * Sizes are taken at the start (what the recorder has written as whole pages
 * by then): a recording still growing is served as it was when asked for, and
 * a later request gets more. The files are opened at the start, so a segment
 * pruned meanwhile is still served whole. Reads are page-cache reads of recent
 * files; writes to disk never happen here. A response that makes no progress
 * for REPLAY_IDLE_MS is closed.
 * Thread: the master's loop. Errors: negative errno (fd closed by us).
 */
#ifndef TRIBUNE_RECORD_REPLAY_H
#define TRIBUNE_RECORD_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

enum { REPLAY_MAX_FILES = 256, REPLAY_IDLE_MS = 30000 };

struct replay_file {
    const char *path; /* borrowed for the call */
    uint64_t bytes;   /* serve this many bytes of it (whole pages) */
};

/* Starts answering the request on `fd` (taken over; non-blocking socket whose
 * request was read). `range`/`range_len`: the Range header value, or NULL.
 * `is_head`: only the response head. Returns 0, or a negative errno (an
 * error response may have been sent; fd closed). */
int replay_start(struct loop *loop, int fd, const struct replay_file *files, size_t n, bool is_head,
                 const char *range, size_t range_len);
/* Replays in progress (for shutdown tallies and tests). */
unsigned replay_count(void);
/* Closes every replay in progress (shutdown). */
void replay_close_all(void);

#endif
