/* The publisher: one Icecast-protocol source connection (PUT or SOURCE),
 * from authentication onwards.
 *
 *   socket bytes --read (only while the queue is short)--> ogg_in (validate)
 *     --> packet queue --pull by the program, at real-time pace--> program
 *
 * Nothing reaches the program before the stream's OpusHead and OpusTags were
 * validated. A stream found invalid is answered with 415 and a message (or
 * just closed once audio flowed) and the program fills with silence, so
 * listeners notice nothing but a pause. Thread: the media loop.
 */
#ifndef TRIBUNE_MEDIA_INGEST_H
#define TRIBUNE_MEDIA_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

struct publisher;
struct program;
struct program_source;

struct publisher_events {
    /* The publisher is gone (closed by either side); `arg` as given. The
     * publisher detaches itself from the program first. */
    void (*on_gone)(struct publisher *pub, void *arg);
    /* Optional: the publisher's stream is valid and ready to be read (`src`),
     * or must no longer be read (`src` NULL). Without it the publisher
     * attaches itself to `prog` (program_attach). */
    void (*on_attach)(struct publisher *pub, struct program_source *src, void *arg);
    void *arg;
};

/* Starts a publisher on `fd` (taken over), whose request was authenticated.
 * `rest` holds body bytes already read with the head. `is_expect_continue`
 * and `is_legacy_source` choose the first response (100 Continue, or 200 OK
 * for SOURCE clients that wait for it). Returns the publisher or NULL (fd
 * closed). */
struct publisher *publisher_start(struct loop *loop, int fd, struct program *prog, const void *rest,
                                  size_t rest_len, int is_expect_continue, int is_legacy_source,
                                  uint64_t timeout_ms, const struct publisher_events *ev,
                                  const char *peer);
/* 1 when the publisher's stream ended and its queue is playing out: a new
 * publisher may replace it (publisher_close it first). */
int publisher_is_draining(const struct publisher *pub);
/* The publisher's stream channels (1 or 2; 0 before its header was read). */
int publisher_channels(const struct publisher *pub);
/* Closes the publisher (e.g. at shutdown); on_gone is called. */
void publisher_close(struct publisher *pub);
/* Closes the publisher if it sent nothing for its timeout. Call each second. */
void publisher_sweep(struct publisher *pub);

#endif
