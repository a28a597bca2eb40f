/* The recorder: every live space's program, as Ogg/Opus files under the data
 * directory, written by a thread of its own so that no disk write ever runs on
 * the media loop or in a worker (DESIGN.md, "Processes and ownership").
 *
 *   media loop                          recorder thread
 *   recording_packet(h, pkt) --copy--> queue (bounded) --> per recording: libogg stream
 *                                                         pages of <= 200 ms -> write()
 *                                                         fdatasync every sync_ms
 *
 * Layout, from validated space ids only (never from a URL):
 *   <dir>/<space id>/manifest.json     the recording's segments and gaps (JSON)
 *   <dir>/<space id>/seg-000001.opus   one Ogg/Opus stream per segment (own serial,
 *   <dir>/<space id>/seg-000002.opus   granules from 0), chained when concatenated
 * A new segment starts at each recording_open (a restart during a live space),
 * and when recording resumes after a write error. The manifest is replaced by
 * write-temp, fsync, rename, fsync of the directory, whenever a segment opens,
 * closes, fails or is recovered.
 *
 * Crash safety: recorder_start() first runs a recovery pass over every
 * recording: a segment left open is scanned page by page (CRC), truncated
 * after its last whole page, and closed (its last page gets the end-of-stream
 * flag, CRC recomputed), so every file is a valid Ogg/Opus stream after any
 * crash, holding everything up to at most the page that was being written.
 *
 * Faults: a write error (ENOSPC, EIO, ...) closes the segment, marks the
 * recording failing (recorder_get_info, the alarm), drops audio while failing,
 * and retries each second; when a retry works a new segment starts and the
 * gap (start, length, reason) goes into the manifest. An fdatasync failure
 * marks its segment "suspect" (not durable) rather than failing. Live audio
 * never waits for the disk: when the queue is full, packets are dropped and
 * counted as a gap.
 *
 * Threads: recorder_start/stop and recording_open/packet/close are called from
 * one thread (the media loop); recorder_get_info and recorder_get_segments may
 * be called from it too (they take a mutex briefly). Errors: negative errno.
 */
#ifndef TRIBUNE_RECORD_RECORDER_H
#define TRIBUNE_RECORD_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct recorder;
struct recording;

struct recorder_config {
    int sync_ms;        /* fdatasync cadence, default 1000 */
    int page_ms;        /* audio per page written, <= 200, default 100 */
    size_t queue_bytes; /* most audio bytes waiting for the thread, default 8 MiB */
    int retry_ms;       /* after a write error, try again this often, default 1000 */
};

enum { RECORDER_MAX_SEGMENTS = 256 };

enum segment_state {
    SEGMENT_OPEN,      /* being written now */
    SEGMENT_CLOSED,    /* ended cleanly (end of stream written, synced) */
    SEGMENT_RECOVERED, /* was open at a crash: truncated and closed by recovery */
    SEGMENT_SUSPECT,   /* an fdatasync failed: its tail may not be durable */
    SEGMENT_FAILED,    /* closed by a write error */
};

struct recording_info {
    bool exists;
    bool is_open;         /* a recording_open without its recording_close */
    bool is_failing;      /* the alarm: writing fails now, audio is being lost */
    bool is_closing;      /* recording_close done, the thread has not finished the segment yet */
    uint64_t bytes;       /* sum of the segments' sizes on disk (what replay serves) */
    uint64_t duration_ms; /* audio in the segments */
    uint64_t gap_ms;      /* audio lost to faults (write errors, full queue) */
    unsigned segments;
    unsigned suspect;   /* segments whose fsync failed */
    int64_t started_at; /* unix seconds of the first segment */
    int last_error;     /* errno of the last write error, 0 if none */
};

struct segment_ref {
    char path[512]; /* absolute or relative to the process's cwd, as given to recorder_start */
    uint64_t bytes; /* whole pages written so far: serve no more than this */
    enum segment_state state;
};

/* Starts the recorder on `dir` (created if missing), after recovering every
 * recording found there. cfg may be NULL (defaults). NULL on failure (logged). */
struct recorder *recorder_start(const char *dir, const struct recorder_config *cfg);
/* Closes every open recording (as recording_close), drains the queue, joins the
 * thread. Handles still held by the caller are freed: do not use them after. */
void recorder_stop(struct recorder *r);

/* Starts (or continues, in a new segment) the recording of space `id` (a valid
 * space id). `channels` is the program's (1 or 2). NULL on failure, or when the
 * space's recording is already open. The segment file is created by the
 * thread: if that fails, the recording is failing at once and retries. */
struct recording *recording_open(struct recorder *r, const char *id, int channels);
/* One program packet (borrowed: copied). Never blocks; 0, or -ENOBUFS when the
 * queue is full (the packet is dropped and counted in gap_ms). */
int recording_packet(struct recording *h, const uint8_t *data, size_t len, int samples);
/* Ends the recording: its segment is closed (end of stream, synced); `h` is freed.
 * The close is queued: it never fails, and the thread applies it after every
 * packet queued before it. A segment that got no audio page is deleted. */
void recording_close(struct recording *h);

/* What is known of space `id`'s recording (exists false when none). */
int recorder_get_info(struct recorder *r, const char *id, struct recording_info *out);
/* The segments of space `id`'s recording in order, at most `cap`; returns how
 * many, or a negative errno (-ENOENT: no recording). */
int recorder_get_segments(struct recorder *r, const char *id, struct segment_ref *out, size_t cap);
/* Deletes the recordings whose last segment ended more than `max_age_s` ago
 * and that are not open. Returns how many were removed: they vanish from
 * recorder_get_* at once, and the thread deletes their directories (in queue
 * order, so a later recording_open of the same id starts afresh). */
int recorder_prune(struct recorder *r, int64_t max_age_s);
/* Recordings failing now (for /metrics). */
unsigned recorder_failing(struct recorder *r);

/* Test hook (failure injection, as HAProxy's switches): from now on every
 * write() of the recorder (segment pages and headers, manifests) fails with
 * errno `err_write`, and every fdatasync with `err_sync`, until cleared with 0.
 * Any thread. */
void recorder_inject_fault(struct recorder *r, int err_write, int err_sync);

#endif
