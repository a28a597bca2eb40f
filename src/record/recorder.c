/* The recorder (see recorder.h for the contract).
 *
 *   media loop (producer)                 recorder thread (consumer)
 *   recording_open  --MSG_OPEN-------+
 *   recording_packet --MSG_PACKET----+--> queue (FIFO, r->mu) --> handle_msg()
 *   recording_close --MSG_CLOSE------+        bounded by queue_bytes for packets only;
 *   recorder_prune  --MSG_DELETE-----+        control messages always fit
 *   recorder_stop   --(is_stopping)--+
 *
 * struct rec is one space's recording. Its fields come in two groups:
 *   - the snapshot (segments, gaps, flags, counters): written by the thread
 *     (the media loop writes is_open, is_closing, handle and adds the queue's
 *     drops to gap_samples), read by recorder_get_*, always under r->mu;
 *   - the writer (fd, libogg stream, clocks): the thread's alone.
 * The list of recs is under r->mu: recording_open adds, recorder_prune
 * unlinks (the thread frees an unlinked rec when its MSG_DELETE comes).
 *
 * Pages: packets go into the stream as they come; at close the last page
 * written gets the end-of-stream flag in place (page_set_eos, as recovery
 * does), so nothing is held back and a crash loses at most the page being
 * filled. A
 * page is flushed before it would exceed page_ms and as soon as it reaches it.
 * A segment with no audio page at all is deleted (at close, at a write error,
 * and by recovery): an Ogg/Opus file of headers only is of no use to replay.
 *
 * Time: c->t counts the samples (48 kHz) the recording received, written or
 * lost; a segment starts at the t of its opening; a gap is [at, at + length)
 * on that same clock. Granules follow ogg_pkg: headers 0, audio from pre-skip
 * on, so duration = last granule - pre-skip.
 */
#include "record/recorder.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ogg/ogg.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "pkg/ogg_pkg.h"
#include "space/registry.h"

enum {
    PRE_SKIP = 312,
    SAMPLES_PER_MS = 48,
    MAX_GAPS = 256,
    FILE_NAME_BYTES = 32,
    REASON_BYTES = 24,
    DIR_MAX = 400, /* room for "/<id>/seg-000000.opus" within segment_ref.path */
    IDLE_WAKE_MS = 100,
};

static const char *const state_names[] = {"open", "closed", "recovered", "suspect", "failed"};

struct seg {
    char file[FILE_NAME_BYTES]; /* "seg-000001.opus" */
    int64_t started_at;         /* unix ms */
    uint64_t start_ms;          /* recording time */
    uint64_t duration_ms;
    uint64_t bytes;
    enum segment_state state;
};

struct gap {
    uint64_t at_ms, duration_ms;
    char reason[REASON_BYTES];
};

enum msg_kind { MSG_OPEN, MSG_PACKET, MSG_CLOSE, MSG_DELETE };

struct msg {
    struct msg *next;
    enum msg_kind kind;
    struct rec *rec;
    int channels;         /* MSG_OPEN */
    int samples;          /* MSG_PACKET */
    uint64_t gap_before;  /* samples dropped by the producer just before this one */
    size_t len;           /* MSG_PACKET */
    unsigned char data[]; /* MSG_PACKET */
};

struct rec {
    struct rec *next; /* r->recs, under r->mu */
    char id[SPACE_ID_MAX + 1];
    /* ---- snapshot, under r->mu ---- */
    struct seg segs[RECORDER_MAX_SEGMENTS];
    unsigned nseg;
    struct gap gaps[MAX_GAPS];
    unsigned ngap;
    bool is_open;    /* media thread's view: between open and close */
    bool is_closing; /* closed by the media thread, not yet by this one */
    bool is_failing;
    int last_error;
    uint64_t gap_samples; /* every sample lost, counted once */
    /* ---- writer, recorder thread only ---- */
    int fd;          /* the open segment, or -1 */
    int cur;         /* its index in segs, or -1 */
    bool is_active;  /* between MSG_OPEN and MSG_CLOSE */
    bool is_dirty;   /* the manifest on disk is behind the snapshot */
    bool needs_sync; /* written since the last fdatasync */
    int channels;
    ogg_stream_state os;
    int64_t granule, packetno;
    uint32_t page_samples;
    unsigned char *wbuf; /* pages being written */
    size_t wbuf_len, wbuf_cap;
    uint64_t t, seg_t;       /* recording time now, and at the segment's start */
    uint64_t fail_at;        /* where the current failure's gap starts */
    uint64_t good_bytes;     /* whole pages in the file */
    int64_t written_granule; /* of the last page written */
    uint64_t last_page_off;
    size_t last_page_len;
    bool has_audio_page;
    uint64_t last_sync_ms, last_retry_ms;
    unsigned next_number;
    struct recording *handle;
};

struct recording {
    struct recorder *r;
    struct rec *rec;
    uint64_t dropped;  /* samples dropped since the last queued message */
    struct msg *close; /* preallocated: closing never fails */
};

struct recorder {
    char dir[DIR_MAX];
    struct recorder_config cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct msg *head, *tail; /* under mu */
    size_t queued_bytes;     /* under mu */
    bool is_stopping;        /* under mu */
    struct rec *recs;        /* under mu */
    atomic_int inj_write, inj_sync;
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rec_path(char *out, size_t cap, const struct recorder *r, const char *id,
                    const char *file)
{
    int n = file ? snprintf(out, cap, "%s/%s/%s", r->dir, id, file)
                 : snprintf(out, cap, "%s/%s", r->dir, id);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* ---- Disk primitives ---- */

/* write() of all `len` bytes, through short writes and EINTR; honours the
 * injected write fault. 0 or negative errno. */
static int write_all(struct recorder *r, int fd, const void *buf, size_t len)
{
    int inj = atomic_load(&r->inj_write);
    if (inj) return -inj;
    const unsigned char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int data_sync(struct recorder *r, int fd)
{
    int inj = atomic_load(&r->inj_sync);
    if (inj) return -inj;
    return fdatasync(fd) == 0 ? 0 : -errno;
}

static void fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* Sets the end-of-stream flag of the page at `off` (`len` bytes) and rewrites
 * its CRC in place (libogg computes it with the CRC field zeroed). */
static int page_set_eos(int fd, uint64_t off, size_t len)
{
    unsigned char *buf = malloc(len);
    if (!buf) return -ENOMEM;
    int err = 0;
    if (pread(fd, buf, len, (off_t)off) != (ssize_t)len) {
        err = -EIO;
    } else if (!(buf[5] & 0x04)) {
        long hl = 27 + buf[26];
        buf[5] |= 0x04;
        ogg_page og = {buf, hl, buf + hl, (long)len - hl};
        ogg_page_checksum_set(&og);
        if (pwrite(fd, buf, (size_t)hl, (off_t)off) != hl) err = errno ? -errno : -EIO;
    }
    free(buf);
    return err;
}

/* What a scan of a segment file found: its whole pages from the start. */
struct scan {
    uint64_t valid_end; /* bytes of whole, valid pages from offset 0 */
    uint64_t file_size;
    uint64_t last_off; /* the last valid page */
    size_t last_len;
    int64_t last_granule; /* of the last audio page that has one */
    bool has_audio;       /* a page after the two header pages */
    bool is_eos;          /* the last valid page has the EOS flag */
};

/* Reads `fd` from the start through ogg_sync_pageseek (which checks each
 * CRC), stopping at the first byte that is not a valid page of the stream. */
static int scan_file(int fd, struct scan *s)
{
    memset(s, 0, sizeof(*s));
    s->last_granule = -1;
    ogg_sync_state oy;
    ogg_sync_init(&oy);
    int serial = 0, npages = 0;
    bool is_eof = false, is_stop = false;
    off_t rd = 0;
    while (!is_stop) {
        ogg_page og;
        long n = ogg_sync_pageseek(&oy, &og);
        if (n < 0) break; /* garbage or a bad CRC: the valid prefix ends here */
        if (n > 0) {
            if (npages == 0) serial = ogg_page_serialno(&og);
            if (ogg_page_serialno(&og) != serial || (npages == 0) != !!ogg_page_bos(&og)) break;
            s->last_off = s->valid_end;
            s->last_len = (size_t)n;
            s->valid_end += (uint64_t)n;
            s->is_eos = ogg_page_eos(&og);
            if (++npages > 2) {
                s->has_audio = true;
                if (ogg_page_granulepos(&og) >= 0) s->last_granule = ogg_page_granulepos(&og);
            }
            if (s->is_eos) is_stop = true;
            continue;
        }
        if (is_eof) break;
        char *buf = ogg_sync_buffer(&oy, 65536);
        ssize_t got = buf ? pread(fd, buf, 65536, rd) : -1;
        if (got < 0) {
            ogg_sync_clear(&oy);
            return -EIO;
        }
        if (got == 0) is_eof = true;
        rd += got;
        ogg_sync_wrote(&oy, got);
    }
    ogg_sync_clear(&oy);
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    s->file_size = (uint64_t)st.st_size;
    return 0;
}

static uint64_t granule_ms(int64_t granule)
{
    return granule > PRE_SKIP ? (uint64_t)(granule - PRE_SKIP) / SAMPLES_PER_MS : 0;
}

/* Makes the file a closed stream: cut after its last whole page, EOS on that
 * page, fsync. Returns 1 if it had to change, 0 if it was whole, -ENODATA
 * when it holds no audio page (the caller deletes it), or negative errno. */
static int seal_file(int fd, struct scan *s)
{
    int err = scan_file(fd, s);
    if (err < 0) return err;
    if (!s->has_audio) return -ENODATA;
    if (s->is_eos && s->valid_end == s->file_size) return 0;
    if (ftruncate(fd, (off_t)s->valid_end) != 0) return -errno;
    err = page_set_eos(fd, s->last_off, s->last_len);
    if (err < 0) return err;
    s->is_eos = true;
    s->file_size = s->valid_end;
    return fsync(fd) == 0 ? 1 : -errno;
}

/* ---- The manifest ---- */

/* The manifest's text, built under r->mu from the snapshot. Caller frees. */
static char *manifest_print(const struct rec *c)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "space", c->id);
    cJSON *segs = cJSON_AddArrayToObject(root, "segments");
    for (unsigned i = 0; i < c->nseg; i++) {
        const struct seg *s = &c->segs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", s->file);
        cJSON_AddNumberToObject(o, "started_at", (double)s->started_at);
        cJSON_AddNumberToObject(o, "start_ms", (double)s->start_ms);
        cJSON_AddNumberToObject(o, "duration_ms", (double)s->duration_ms);
        cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
        cJSON_AddStringToObject(o, "state", state_names[s->state]);
        cJSON_AddItemToArray(segs, o);
    }
    cJSON *gaps = cJSON_AddArrayToObject(root, "gaps");
    for (unsigned i = 0; i < c->ngap; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "at_ms", (double)c->gaps[i].at_ms);
        cJSON_AddNumberToObject(o, "duration_ms", (double)c->gaps[i].duration_ms);
        cJSON_AddStringToObject(o, "reason", c->gaps[i].reason);
        cJSON_AddItemToArray(gaps, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* Replaces <dir>/<id>/manifest.json atomically: write a temp file, fsync,
 * rename over, fsync the directory. Recorder thread (or recorder_start). */
static int manifest_write(struct recorder *r, struct rec *c)
{
    char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
    rec_path(dir, sizeof(dir), r, c->id, NULL);
    rec_path(tmp, sizeof(tmp), r, c->id, "manifest.json.tmp");
    rec_path(path, sizeof(path), r, c->id, "manifest.json");
    pthread_mutex_lock(&r->mu);
    char *text = manifest_print(c);
    pthread_mutex_unlock(&r->mu);
    if (!text) return -ENOMEM;
    int err = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = -errno;
    } else {
        err = write_all(r, fd, text, strlen(text));
        if (!err && fsync(fd) != 0) err = -errno;
        close(fd);
        if (!err && rename(tmp, path) != 0) err = -errno;
        if (err) unlink(tmp);
    }
    free(text);
    if (err) return err;
    fsync_dir(dir);
    c->is_dirty = false;
    return 0;
}

static void manifest_save(struct recorder *r, struct rec *c)
{
    c->is_dirty = true;
    int err = manifest_write(r, c);
    if (err < 0 && !c->is_failing)
        log_warn("recorder: space %s: manifest not written: %s", c->id, strerror(-err));
}

static enum segment_state state_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (s && strcmp(s, state_names[i]) == 0) return (enum segment_state)i;
    return SEGMENT_OPEN; /* unknown: recovery checks the file */
}

static uint64_t json_u64(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

static bool seg_name_is_valid(const char *name)
{
    unsigned n;
    char tail[8];
    return strlen(name) == 15 && sscanf(name, "seg-%6u.%5s", &n, tail) == 2 &&
           strcmp(tail, "opus") == 0;
}

/* Loads the manifest into c's snapshot; -EINVAL if it is missing or corrupt. */
static int manifest_load(struct recorder *r, struct rec *c)
{
    char path[PATH_MAX];
    rec_path(path, sizeof(path), r, c->id, "manifest.json");
    FILE *f = fopen(path, "re");
    if (!f) return -EINVAL;
    char buf[1 << 16];
    char *text = NULL;
    size_t len = 0, n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        char *grown = realloc(text, len + n + 1);
        if (!grown) break;
        text = grown;
        memcpy(text + len, buf, n);
        len += n;
    }
    fclose(f);
    if (!text) return -EINVAL;
    text[len] = '\0';
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(root, "segments");
    const cJSON *gaps = cJSON_GetObjectItemCaseSensitive(root, "gaps");
    if (!cJSON_IsArray(segs)) {
        cJSON_Delete(root);
        return -EINVAL;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, segs)
    {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(o, "file");
        if (!cJSON_IsString(file) || !seg_name_is_valid(file->valuestring)) continue;
        if (c->nseg == RECORDER_MAX_SEGMENTS) break;
        struct seg *s = &c->segs[c->nseg++];
        snprintf(s->file, sizeof(s->file), "%s", file->valuestring);
        s->started_at = (int64_t)json_u64(o, "started_at");
        s->start_ms = json_u64(o, "start_ms");
        s->duration_ms = json_u64(o, "duration_ms");
        s->bytes = json_u64(o, "bytes");
        s->state = state_parse(cJSON_GetStringValue(cJSON_GetObjectItem(o, "state")));
    }
    cJSON_ArrayForEach(o, gaps)
    {
        if (c->ngap == MAX_GAPS) break;
        struct gap *g = &c->gaps[c->ngap++];
        g->at_ms = json_u64(o, "at_ms");
        g->duration_ms = json_u64(o, "duration_ms");
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(o, "reason"));
        snprintf(g->reason, sizeof(g->reason), "%s", why ? why : "unknown");
        c->gap_samples += g->duration_ms * SAMPLES_PER_MS;
    }
    cJSON_Delete(root);
    return 0;
}

/* ---- Recovery (recorder_start, before the thread runs) ---- */

static int seg_cmp(const void *a, const void *b)
{
    return strcmp(((const struct seg *)a)->file, ((const struct seg *)b)->file);
}

/* Adds the seg-*.opus files of the directory that the manifest does not list
 * (a crash between creating a segment and writing the manifest, or no manifest). */
static void adopt_files(struct recorder *r, struct rec *c)
{
    char path[PATH_MAX];
    rec_path(path, sizeof(path), r, c->id, NULL);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && c->nseg < RECORDER_MAX_SEGMENTS) {
        if (!seg_name_is_valid(e->d_name)) continue;
        bool is_known = false;
        for (unsigned i = 0; i < c->nseg && !is_known; i++)
            is_known = strcmp(c->segs[i].file, e->d_name) == 0;
        if (is_known) continue;
        struct seg *s = &c->segs[c->nseg++];
        memset(s, 0, sizeof(*s));
        memcpy(s->file, e->d_name, 16); /* seg_name_is_valid: 15 bytes and NUL */
        s->state = SEGMENT_OPEN;        /* unknown: checked below */
        s->start_ms = UINT64_MAX;
    }
    closedir(d);
    qsort(c->segs, c->nseg, sizeof(c->segs[0]), seg_cmp);
}

/* Checks one segment's file and closes it if needed; false when the segment
 * is to be dropped (no file, or no audio in it: the file is deleted). */
static bool recover_seg(struct recorder *r, struct rec *c, struct seg *s)
{
    char path[PATH_MAX];
    rec_path(path, sizeof(path), r, c->id, s->file);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    bool is_adopted = s->start_ms == UINT64_MAX; /* not in the manifest: state unknown */
    struct scan sc;
    int res = seal_file(fd, &sc);
    struct stat st;
    int64_t mtime = fstat(fd, &st) == 0 ? (int64_t)st.st_mtime * 1000 : unix_ms();
    close(fd);
    if (res == -ENODATA) {
        log_info("recorder: space %s: %s holds no audio, deleted", c->id, s->file);
        unlink(path);
        return false;
    }
    if (res < 0) {
        log_error("recorder: space %s: %s cannot be recovered: %s", c->id, s->file, strerror(-res));
        return true;
    }
    if (is_adopted) s->state = res > 0 ? SEGMENT_RECOVERED : SEGMENT_CLOSED;
    if (res > 0 || s->state == SEGMENT_OPEN) {
        log_info("recorder: space %s: %s recovered, %llu of %llu bytes kept", c->id, s->file,
                 (unsigned long long)sc.valid_end, (unsigned long long)sc.file_size);
        if (s->state == SEGMENT_OPEN || s->state == SEGMENT_CLOSED) s->state = SEGMENT_RECOVERED;
    }
    s->bytes = sc.valid_end;
    s->duration_ms = granule_ms(sc.last_granule);
    if (!s->started_at) s->started_at = mtime - (int64_t)s->duration_ms;
    return true;
}

/* Recovers every segment of `c`, fixes the times of adopted segments, and
 * writes the manifest back. */
static void recover_rec(struct recorder *r, struct rec *c)
{
    if (manifest_load(r, c) < 0) {
        log_warn("recorder: space %s: manifest missing or corrupt, rebuilt from files", c->id);
        c->nseg = c->ngap = 0;
        c->gap_samples = 0;
    }
    adopt_files(r, c);
    unsigned kept = 0;
    uint64_t end_ms = 0;
    for (unsigned i = 0; i < c->nseg; i++) {
        struct seg s = c->segs[i];
        if (!recover_seg(r, c, &s)) continue;
        if (s.start_ms == UINT64_MAX || s.start_ms < end_ms) s.start_ms = end_ms;
        end_ms = s.start_ms + s.duration_ms;
        c->segs[kept++] = s;
    }
    c->nseg = kept;
    for (unsigned i = 0; i < c->ngap; i++)
        if (c->gaps[i].at_ms + c->gaps[i].duration_ms > end_ms)
            end_ms = c->gaps[i].at_ms + c->gaps[i].duration_ms;
    c->t = end_ms * SAMPLES_PER_MS;
    for (unsigned i = 0; i < c->nseg; i++) {
        unsigned n = 0;
        sscanf(c->segs[i].file, "seg-%6u", &n);
        if (n >= c->next_number) c->next_number = n + 1;
    }
    char tmp[PATH_MAX];
    rec_path(tmp, sizeof(tmp), r, c->id, "manifest.json.tmp");
    unlink(tmp);
    manifest_save(r, c);
}

static struct rec *rec_new(const char *id)
{
    struct rec *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->fd = -1;
    c->cur = -1;
    c->next_number = 1;
    return c;
}

static void rec_free(struct rec *c)
{
    if (!c) return;
    free(c->wbuf);
    free(c);
}

/* Under r->mu (or before the thread exists). */
static struct rec *rec_find(struct recorder *r, const char *id)
{
    for (struct rec *c = r->recs; c; c = c->next)
        if (strcmp(c->id, id) == 0) return c;
    return NULL;
}

static void recover_all(struct recorder *r)
{
    DIR *d = opendir(r->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        struct stat st;
        if (!space_id_is_valid(e->d_name, strnlen(e->d_name, SPACE_ID_MAX + 1))) continue;
        if (rec_path(path, sizeof(path), r, e->d_name, NULL) < 0) continue;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        struct rec *c = rec_new(e->d_name);
        if (!c) break;
        recover_rec(r, c);
        c->next = r->recs;
        r->recs = c;
    }
    closedir(d);
}

/* ---- Writing a segment (recorder thread) ---- */

static void snapshot_seg(struct recorder *r, struct rec *c)
{
    int64_t granule = c->written_granule;
    pthread_mutex_lock(&r->mu);
    struct seg *s = &c->segs[c->cur];
    s->bytes = c->good_bytes;
    s->duration_ms = c->has_audio_page ? granule_ms(granule) : 0;
    pthread_mutex_unlock(&r->mu);
}

/* Appends every page libogg has ready (ogg_stream_flush) to c->wbuf. */
static int gather_pages(struct rec *c, size_t *last_rel, size_t *last_len)
{
    ogg_page og;
    while (ogg_stream_flush(&c->os, &og) != 0) {
        size_t len = (size_t)(og.header_len + og.body_len);
        if (c->wbuf_len + len > c->wbuf_cap) {
            size_t cap = (c->wbuf_len + len) * 2;
            unsigned char *grown = realloc(c->wbuf, cap);
            if (!grown) return -ENOMEM;
            c->wbuf = grown;
            c->wbuf_cap = cap;
        }
        *last_rel = c->wbuf_len;
        *last_len = len;
        memcpy(c->wbuf + c->wbuf_len, og.header, (size_t)og.header_len);
        memcpy(c->wbuf + c->wbuf_len + og.header_len, og.body, (size_t)og.body_len);
        c->wbuf_len += len;
    }
    return 0;
}

static void fail_segment(struct recorder *r, struct rec *c, int err);

/* Writes the gathered pages with one write_all(); on an error the segment
 * fails (and the file is cut back to its whole pages). */
static int write_pages(struct recorder *r, struct rec *c, bool is_audio)
{
    size_t last_rel = 0, last_len = 0;
    int err = gather_pages(c, &last_rel, &last_len);
    if (!err && c->wbuf_len) err = write_all(r, c->fd, c->wbuf, c->wbuf_len);
    if (err) {
        c->wbuf_len = 0;
        fail_segment(r, c, -err);
        return err;
    }
    if (c->wbuf_len) {
        c->last_page_off = c->good_bytes + last_rel;
        c->last_page_len = last_len;
        c->good_bytes += c->wbuf_len;
        c->needs_sync = true;
        if (is_audio) c->has_audio_page = true;
        if (is_audio) c->written_granule = c->granule;
    }
    c->wbuf_len = 0;
    if (c->cur >= 0) snapshot_seg(r, c);
    return 0;
}

static void sync_segment(struct recorder *r, struct rec *c)
{
    c->last_sync_ms = clock_ms();
    c->needs_sync = false;
    int err = data_sync(r, c->fd);
    if (!err) return;
    pthread_mutex_lock(&r->mu);
    bool is_new = c->segs[c->cur].state != SEGMENT_SUSPECT;
    c->segs[c->cur].state = SEGMENT_SUSPECT;
    pthread_mutex_unlock(&r->mu);
    if (!is_new) return;
    log_error("recorder: space %s: fdatasync of %s failed: %s; segment marked suspect", c->id,
              c->segs[c->cur].file, strerror(-err));
    manifest_save(r, c);
}

static void stream_reset(struct rec *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    ogg_stream_clear(&c->os);
    c->page_samples = 0;
    c->cur = -1;
}

/* Removes the segment being written from the snapshot (it holds no audio). */
static void drop_current(struct recorder *r, struct rec *c)
{
    char path[PATH_MAX];
    rec_path(path, sizeof(path), r, c->id, c->segs[c->cur].file);
    unlink(path);
    pthread_mutex_lock(&r->mu);
    c->nseg--;
    pthread_mutex_unlock(&r->mu);
}

/* A write failed with `err`: the file is cut back to its whole pages and its
 * last page gets EOS (as recovery would), the segment is marked failed, and
 * the recording starts failing: audio is dropped until a retry works. */
static void fail_segment(struct recorder *r, struct rec *c, int err)
{
    int fix = ftruncate(c->fd, (off_t)c->good_bytes) == 0 ? 0 : -errno;
    if (!fix && c->has_audio_page) fix = page_set_eos(c->fd, c->last_page_off, c->last_page_len);
    if (!fix) (void)fsync(c->fd);
    if (fix < 0) /* recovery at the next start repairs it: it checks every segment */
        log_error("recorder: space %s: cannot close %s after a write error: %s", c->id,
                  c->segs[c->cur].file, strerror(-fix));
    log_error("recorder: space %s: writing %s failed: %s; recording stops until the disk "
              "takes writes again",
              c->id, c->segs[c->cur].file, strerror(err));
    c->fail_at = c->seg_t + (c->has_audio_page ? (uint64_t)(c->written_granule - PRE_SKIP) : 0);
    bool has_audio = c->has_audio_page;
    if (!has_audio) drop_current(r, c);
    pthread_mutex_lock(&r->mu);
    if (has_audio) c->segs[c->cur].state = SEGMENT_FAILED;
    c->is_failing = true;
    c->last_error = err;
    c->gap_samples += c->t > c->fail_at ? c->t - c->fail_at : 0;
    pthread_mutex_unlock(&r->mu);
    stream_reset(c);
    c->last_retry_ms = clock_ms();
    manifest_save(r, c);
}

static int packet_in(struct rec *c, const unsigned char *data, size_t len, int64_t granule, int bos,
                     int eos)
{
    ogg_packet op = {.packet = (unsigned char *)data,
                     .bytes = (long)len,
                     .b_o_s = bos,
                     .e_o_s = eos,
                     .granulepos = granule,
                     .packetno = c->packetno++};
    return ogg_stream_packetin(&c->os, &op) == 0 ? 0 : -ENOMEM;
}

/* Creates segment file number next_number and writes its two header pages. */
static int open_file(struct recorder *r, struct rec *c, char *name, size_t cap)
{
    char path[PATH_MAX];
    rec_path(path, sizeof(path), r, c->id, NULL);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -errno;
    snprintf(name, cap, "seg-%06u.opus", c->next_number);
    rec_path(path, sizeof(path), r, c->id, name);
    /* O_RDWR, not O_WRONLY: after a write error the last page is read back to get EOS. */
    c->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (c->fd < 0) {
        int err = -errno;
        if (err == -EEXIST) c->next_number++;
        return err;
    }
    c->next_number++;
    uint32_t serial;
    if (getrandom(&serial, sizeof(serial), 0) != sizeof(serial)) serial = (uint32_t)clock_us();
    ogg_stream_init(&c->os, (int)serial);
    c->packetno = 0;
    c->granule = 0;
    unsigned char head[19], tags[64];
    opus_head_emit(head, c->channels, PRE_SKIP);
    static const char vendor[] = "tribune";
    memcpy(tags, "OpusTags", 8);
    uint32_t vlen = sizeof(vendor) - 1;
    for (int i = 0; i < 4; i++)
        tags[8 + i] = (unsigned char)(vlen >> (8 * i));
    memcpy(tags + 12, vendor, vlen);
    memset(tags + 12 + vlen, 0, 4);
    size_t l1 = 0, l2 = 0;
    int err = packet_in(c, head, sizeof(head), 0, 1, 0);
    if (!err) err = gather_pages(c, &l1, &l2); /* OpusHead alone on the first page */
    if (!err) err = packet_in(c, tags, 16 + vlen, 0, 0, 0);
    if (!err) err = gather_pages(c, &l1, &l2);
    if (!err) err = write_all(r, c->fd, c->wbuf, c->wbuf_len);
    if (!err) {
        c->good_bytes = c->wbuf_len;
        c->last_page_off = l1;
        c->last_page_len = l2;
    }
    c->wbuf_len = 0;
    c->granule = PRE_SKIP;
    if (err) {
        close(c->fd);
        c->fd = -1;
        unlink(path);
        ogg_stream_clear(&c->os);
    }
    return err;
}

/* Opens a new segment (file, headers, snapshot, manifest). */
static int start_segment(struct recorder *r, struct rec *c)
{
    if (c->nseg == RECORDER_MAX_SEGMENTS) return -EMLINK;
    char name[FILE_NAME_BYTES];
    int err;
    do
        err = open_file(r, c, name, sizeof(name));
    while (err == -EEXIST);
    if (err) return err;
    c->has_audio_page = false;
    c->needs_sync = true;
    c->page_samples = 0;
    c->seg_t = c->t;
    c->last_sync_ms = clock_ms();
    struct seg s = {.started_at = unix_ms(),
                    .start_ms = c->t / SAMPLES_PER_MS,
                    .bytes = c->good_bytes,
                    .state = SEGMENT_OPEN};
    snprintf(s.file, sizeof(s.file), "%s", name);
    pthread_mutex_lock(&r->mu);
    c->cur = (int)c->nseg;
    c->segs[c->nseg++] = s;
    pthread_mutex_unlock(&r->mu);
    manifest_save(r, c);
    return 0;
}

static void add_gap(struct recorder *r, struct rec *c, uint64_t at, uint64_t len,
                    const char *reason)
{
    if (!len) return;
    pthread_mutex_lock(&r->mu);
    if (c->ngap == MAX_GAPS) {
        c->gaps[MAX_GAPS - 1].duration_ms =
            at / SAMPLES_PER_MS + len / SAMPLES_PER_MS - c->gaps[MAX_GAPS - 1].at_ms;
        snprintf(c->gaps[MAX_GAPS - 1].reason, REASON_BYTES, "many");
    } else {
        struct gap *g = &c->gaps[c->ngap++];
        g->at_ms = at / SAMPLES_PER_MS;
        g->duration_ms = (len + SAMPLES_PER_MS - 1) / SAMPLES_PER_MS;
        snprintf(g->reason, sizeof(g->reason), "%s", reason);
    }
    pthread_mutex_unlock(&r->mu);
    c->is_dirty = true;
}

/* After a failure: every retry_ms, try a new segment; the gap goes in on success. */
static void try_resume(struct recorder *r, struct rec *c)
{
    c->last_retry_ms = clock_ms();
    int err = start_segment(r, c);
    if (err) {
        pthread_mutex_lock(&r->mu);
        c->last_error = -err;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    add_gap(r, c, c->fail_at, c->t - c->fail_at,
            c->last_error == ENOSPC ? "disk full" : "write error");
    pthread_mutex_lock(&r->mu);
    c->is_failing = false;
    pthread_mutex_unlock(&r->mu);
    manifest_save(r, c);
    log_warn("recorder: space %s: recording again in %s after a gap of %llu ms", c->id,
             c->segs[c->cur].file, (unsigned long long)((c->t - c->fail_at) / SAMPLES_PER_MS));
}

/* Puts one packet into the stream, flushing a page before it would exceed
 * page_ms and as soon as it reaches it (or at end of stream). */
static int submit(struct recorder *r, struct rec *c, const unsigned char *data, size_t len,
                  int samples, bool is_eos)
{
    uint32_t target = (uint32_t)(r->cfg.page_ms * SAMPLES_PER_MS);
    if (c->page_samples && c->page_samples + (uint32_t)samples > target) {
        int err = write_pages(r, c, true);
        c->page_samples = 0;
        if (err) return err;
    }
    c->granule += samples;
    int err = packet_in(c, data, len, c->granule, 0, is_eos);
    if (err) {
        fail_segment(r, c, -err);
        return err;
    }
    c->page_samples += (uint32_t)samples;
    if (!is_eos && c->page_samples < target) return 0;
    c->page_samples = 0;
    err = write_pages(r, c, true);
    if (!err && clock_ms() - c->last_sync_ms >= (uint64_t)r->cfg.sync_ms) sync_segment(r, c);
    return err;
}

static void lose(struct recorder *r, struct rec *c, uint64_t samples)
{
    pthread_mutex_lock(&r->mu);
    c->gap_samples += samples;
    pthread_mutex_unlock(&r->mu);
}

static void handle_packet(struct recorder *r, struct rec *c, struct msg *m)
{
    if (m->gap_before) {
        if (c->fd >= 0) add_gap(r, c, c->t, m->gap_before, "queue full");
        c->t += m->gap_before; /* counted in gap_samples by the producer */
    }
    c->t += (uint64_t)m->samples;
    if (c->fd < 0) {
        lose(r, c, (uint64_t)m->samples);
        return;
    }
    submit(r, c, m->data, m->len, m->samples, false); /* a failure fails the segment */
}

/* Ends the segment being written: the page being filled is written, the last
 * page gets the end-of-stream flag in place, and the file is synced. A
 * segment without audio is deleted. */
static void close_segment(struct recorder *r, struct rec *c)
{
    if (c->page_samples && write_pages(r, c, true) < 0) return; /* failed: already sealed */
    c->page_samples = 0;
    if (c->has_audio_page) {
        int err = page_set_eos(c->fd, c->last_page_off, c->last_page_len);
        if (err)
            log_error("recorder: space %s: cannot close %s: %s", c->id, c->segs[c->cur].file,
                      strerror(-err));
    }
    if (!c->has_audio_page) {
        drop_current(r, c);
    } else {
        sync_segment(r, c);
        pthread_mutex_lock(&r->mu);
        if (c->segs[c->cur].state == SEGMENT_OPEN) c->segs[c->cur].state = SEGMENT_CLOSED;
        pthread_mutex_unlock(&r->mu);
    }
    stream_reset(c);
    manifest_save(r, c);
}

static void handle_close(struct recorder *r, struct rec *c, struct msg *m)
{
    if (m->gap_before && c->fd >= 0) add_gap(r, c, c->t, m->gap_before, "queue full");
    c->t += m->gap_before;
    if (c->fd >= 0) close_segment(r, c);
    pthread_mutex_lock(&r->mu);
    bool was_failing = c->is_failing;
    c->is_failing = false;
    c->is_closing = false;
    pthread_mutex_unlock(&r->mu);
    if (was_failing) {
        add_gap(r, c, c->fail_at, c->t - c->fail_at, "write error");
        manifest_save(r, c);
    }
    c->is_active = false;
}

/* Deletes a pruned recording's files and directory, then the rec itself. */
static void handle_delete(struct recorder *r, struct rec *c)
{
    char path[PATH_MAX];
    rec_path(path, sizeof(path), r, c->id, NULL);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    if (rmdir(path) != 0) log_warn("recorder: space %s: rmdir: %s", c->id, strerror(errno));
    fsync_dir(r->dir);
    rec_free(c);
}

static void handle_msg(struct recorder *r, struct msg *m)
{
    struct rec *c = m->rec;
    switch (m->kind) {
    case MSG_OPEN: {
        c->channels = m->channels;
        c->is_active = true;
        c->fail_at = c->t;
        int err = start_segment(r, c);
        if (err) {
            log_error("recorder: space %s: cannot start a segment: %s", c->id, strerror(-err));
            pthread_mutex_lock(&r->mu);
            c->is_failing = true;
            c->last_error = -err;
            pthread_mutex_unlock(&r->mu);
            c->last_retry_ms = clock_ms();
        }
        break;
    }
    case MSG_PACKET:
        handle_packet(r, c, m);
        break;
    case MSG_CLOSE:
        handle_close(r, c, m);
        break;
    case MSG_DELETE:
        handle_delete(r, c);
        break;
    }
}

/* Timers of one rec: the sync cadence, retries, a manifest left behind. */
static void tend(struct recorder *r, struct rec *c, uint64_t now)
{
    if (c->fd >= 0 && c->needs_sync && now - c->last_sync_ms >= (uint64_t)r->cfg.sync_ms)
        sync_segment(r, c);
    bool is_failing = c->is_active && c->fd < 0;
    if (is_failing && now - c->last_retry_ms >= (uint64_t)r->cfg.retry_ms) try_resume(r, c);
    if (c->is_dirty && now - c->last_retry_ms >= (uint64_t)r->cfg.retry_ms) {
        c->last_retry_ms = now;
        (void)manifest_write(r, c);
    }
}

static void tend_all(struct recorder *r)
{
    uint64_t now = clock_ms();
    pthread_mutex_lock(&r->mu);
    for (struct rec *c = r->recs; c; c = c->next) {
        /* Safe to unlock: only prune unlinks, and a pruned rec is freed by
         * this thread alone, when its MSG_DELETE comes. Walk from a copy. */
        pthread_mutex_unlock(&r->mu);
        tend(r, c, now);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
}

static void wait_for_work(struct recorder *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += IDLE_WAKE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

static void *recorder_main(void *arg)
{
    struct recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (!r->head && r->is_stopping) break;
        if (!r->head) wait_for_work(r);
        struct msg *m = r->head;
        r->head = r->tail = NULL;
        pthread_mutex_unlock(&r->mu);
        while (m) {
            struct msg *next = m->next;
            size_t len = m->kind == MSG_PACKET ? m->len : 0;
            handle_msg(r, m);
            free(m);
            m = next;
            /* The bound counts bytes until they are handled, not merely taken. */
            pthread_mutex_lock(&r->mu);
            r->queued_bytes -= len;
            pthread_mutex_unlock(&r->mu);
        }
        tend_all(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- The API (media loop) ---- */

static void config_fill(struct recorder_config *out, const struct recorder_config *in)
{
    *out = (struct recorder_config){
        .sync_ms = 1000, .page_ms = 100, .queue_bytes = 8u << 20, .retry_ms = 1000};
    if (!in) return;
    if (in->sync_ms > 0) out->sync_ms = in->sync_ms;
    if (in->page_ms > 0) out->page_ms = in->page_ms < 200 ? in->page_ms : 200;
    if (in->queue_bytes > 0) out->queue_bytes = in->queue_bytes;
    if (in->retry_ms > 0) out->retry_ms = in->retry_ms;
}

static int sync_init(struct recorder *r)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) return -ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int err = pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (err) return -err;
    err = pthread_mutex_init(&r->mu, NULL);
    if (err) pthread_cond_destroy(&r->cv);
    return -err;
}

struct recorder *recorder_start(const char *dir, const struct recorder_config *cfg)
{
    if (!dir || strlen(dir) >= DIR_MAX) {
        log_error("recorder: data directory path too long");
        return NULL;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        log_error("recorder: mkdir %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct recorder *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    snprintf(r->dir, sizeof(r->dir), "%s", dir);
    config_fill(&r->cfg, cfg);
    if (sync_init(r) < 0) {
        free(r);
        return NULL;
    }
    recover_all(r);
    /* The thread takes no signal: the media loop reads them (signalfd), and a
     * signal delivered to this thread would take its default action instead. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&r->thread, NULL, recorder_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        log_error("recorder: pthread_create: %s", strerror(err));
        r->is_stopping = true;
        recorder_stop(r);
        return NULL;
    }
    return r;
}

/* Queues `m` (FIFO) and wakes the thread. Under nothing; takes r->mu. */
static void enqueue_locked(struct recorder *r, struct msg *m)
{
    m->next = NULL;
    if (r->tail)
        r->tail->next = m;
    else
        r->head = m;
    r->tail = m;
    pthread_cond_signal(&r->cv);
}

static struct msg *msg_new(enum msg_kind kind, struct rec *c, size_t len)
{
    struct msg *m = calloc(1, sizeof(*m) + len);
    if (!m) return NULL;
    m->kind = kind;
    m->rec = c;
    m->len = len;
    return m;
}

void recorder_stop(struct recorder *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    bool has_thread = !r->is_stopping;
    pthread_mutex_unlock(&r->mu);
    for (;;) { /* each recording_close unhooks its handle from its rec */
        struct recording *h = NULL;
        pthread_mutex_lock(&r->mu);
        for (struct rec *c = r->recs; c && !h; c = c->next)
            h = c->handle;
        pthread_mutex_unlock(&r->mu);
        if (!h) break;
        recording_close(h);
    }
    pthread_mutex_lock(&r->mu);
    r->is_stopping = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (has_thread) pthread_join(r->thread, NULL);
    for (struct msg *m = r->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    for (struct rec *c = r->recs, *next; c; c = next) {
        next = c->next;
        if (c->handle) free(c->handle->close);
        free(c->handle);
        rec_free(c);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

struct recording *recording_open(struct recorder *r, const char *id, int channels)
{
    if (!id || !space_id_is_valid(id, strnlen(id, SPACE_ID_MAX + 1))) return NULL;
    if (channels != 1 && channels != 2) return NULL;
    struct recording *h = calloc(1, sizeof(*h));
    struct msg *open_msg = msg_new(MSG_OPEN, NULL, 0);
    struct msg *close_msg = msg_new(MSG_CLOSE, NULL, 0);
    struct rec *fresh = NULL;
    pthread_mutex_lock(&r->mu);
    struct rec *c = rec_find(r, id);
    if (!c) c = fresh = rec_new(id);
    bool is_ok = h && open_msg && close_msg && c && !c->is_open && !r->is_stopping;
    if (is_ok) {
        if (fresh) {
            fresh->next = r->recs;
            r->recs = fresh;
        }
        c->is_open = true;
        c->handle = h;
        *h = (struct recording){.r = r, .rec = c, .close = close_msg};
        open_msg->rec = close_msg->rec = c;
        open_msg->channels = channels;
        enqueue_locked(r, open_msg);
    }
    pthread_mutex_unlock(&r->mu);
    if (is_ok) return h;
    free(h);
    free(open_msg);
    free(close_msg);
    if (fresh) rec_free(fresh);
    return NULL;
}

int recording_packet(struct recording *h, const uint8_t *data, size_t len, int samples)
{
    if (!h || samples <= 0) return -EINVAL;
    struct recorder *r = h->r;
    struct msg *m = NULL;
    pthread_mutex_lock(&r->mu);
    bool has_room = r->queued_bytes + len <= r->cfg.queue_bytes;
    pthread_mutex_unlock(&r->mu);
    if (has_room) m = msg_new(MSG_PACKET, h->rec, len);
    pthread_mutex_lock(&r->mu);
    if (m && r->queued_bytes + len <= r->cfg.queue_bytes) {
        memcpy(m->data, data, len);
        m->samples = samples;
        m->gap_before = h->dropped;
        h->dropped = 0;
        r->queued_bytes += len;
        enqueue_locked(r, m);
        m = NULL;
        has_room = true;
    } else {
        h->dropped += (uint64_t)samples;
        h->rec->gap_samples += (uint64_t)samples;
        has_room = false;
    }
    pthread_mutex_unlock(&r->mu);
    free(m);
    return has_room ? 0 : -ENOBUFS;
}

void recording_close(struct recording *h)
{
    if (!h) return;
    struct recorder *r = h->r;
    struct msg *m = h->close;
    pthread_mutex_lock(&r->mu);
    m->gap_before = h->dropped;
    h->rec->is_open = false;
    h->rec->is_closing = true;
    h->rec->handle = NULL;
    enqueue_locked(r, m);
    pthread_mutex_unlock(&r->mu);
    free(h);
}

int recorder_get_info(struct recorder *r, const char *id, struct recording_info *out)
{
    memset(out, 0, sizeof(*out));
    if (!id) return -EINVAL;
    pthread_mutex_lock(&r->mu);
    const struct rec *c = rec_find(r, id);
    if (c) {
        out->exists = true;
        out->is_open = c->is_open;
        out->is_failing = c->is_failing;
        out->is_closing = c->is_closing;
        out->last_error = c->last_error;
        out->gap_ms = c->gap_samples / SAMPLES_PER_MS;
        out->segments = c->nseg;
        out->started_at = c->nseg ? c->segs[0].started_at / 1000 : 0;
        for (unsigned i = 0; i < c->nseg; i++) {
            out->bytes += c->segs[i].bytes;
            out->duration_ms += c->segs[i].duration_ms;
            out->suspect += c->segs[i].state == SEGMENT_SUSPECT;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int recorder_get_segments(struct recorder *r, const char *id, struct segment_ref *out, size_t cap)
{
    if (!id) return -EINVAL;
    pthread_mutex_lock(&r->mu);
    const struct rec *c = rec_find(r, id);
    int n = c ? 0 : -ENOENT;
    for (unsigned i = 0; c && i < c->nseg && (size_t)n < cap; i++, n++) {
        rec_path(out[n].path, sizeof(out[n].path), r, c->id, c->segs[i].file);
        out[n].bytes = c->segs[i].bytes;
        out[n].state = c->segs[i].state;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* A recording is old when its last segment ended before `cutoff` (unix ms). */
static bool rec_is_old(const struct rec *c, int64_t cutoff)
{
    if (c->is_open) return false;
    if (!c->nseg) return true;
    const struct seg *s = &c->segs[c->nseg - 1];
    return s->started_at + (int64_t)s->duration_ms < cutoff;
}

int recorder_prune(struct recorder *r, int64_t max_age_s)
{
    int64_t cutoff = unix_ms() - max_age_s * 1000;
    int n = 0;
    pthread_mutex_lock(&r->mu);
    for (struct rec **p = &r->recs; *p;) {
        struct rec *c = *p;
        struct msg *m = rec_is_old(c, cutoff) ? msg_new(MSG_DELETE, c, 0) : NULL;
        if (!m) {
            p = &c->next;
            continue;
        }
        *p = c->next; /* invisible now; the thread deletes its files, then frees it */
        c->next = NULL;
        enqueue_locked(r, m);
        n++;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

unsigned recorder_failing(struct recorder *r)
{
    unsigned n = 0;
    pthread_mutex_lock(&r->mu);
    for (const struct rec *c = r->recs; c; c = c->next)
        n += c->is_failing;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void recorder_inject_fault(struct recorder *r, int err_write, int err_sync)
{
    atomic_store(&r->inj_write, err_write);
    atomic_store(&r->inj_sync, err_sync);
}
