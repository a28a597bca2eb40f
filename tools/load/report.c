/* Run results; see report.h for the contract. */
#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attack.h"
#include "retry.h"

/* Join-time summary, in milliseconds. */
struct join_stats {
    size_t n;
    double p50_ms, p99_ms, max_ms;
};

/* --loud-bytes: first-loud-page times over the listeners that saw one, unix
 * seconds (meaningless when n is 0). */
struct loud_stats {
    size_t n;
    double first_s, p50_s, p99_s, last_s;
};

void report_add(struct load_counts *dst, const struct load_counts *src)
{
#define ADD(field) dst->field += src->field
    ADD(joined), ADD(connecting), ADD(connected), ADD(streaming), ADD(waiting), ADD(got_audio);
    ADD(warming), ADD(hearing), ADD(stalled), ADD(ever_stalled), ADD(hearing_clean);
    ADD(failed_connect), ADD(failed_reset), ADD(failed_eof), ADD(failed_proto), ADD(refused);
    ADD(ever_skipped), ADD(skips), ADD(spans_low), ADD(judged), ADD(audio_samples);
    ADD(stopped), ADD(stopped_ever), ADD(flood_started), ADD(flood_connecting), ADD(flood_open);
    ADD(flood_closed_by_server), ADD(flood_failed_connect), ADD(flood_answered);
    ADD(flood_status_other), ADD(flood_bad_answer), ADD(flood_waiting), ADD(flood_reset_sent);
    ADD(flood_reset_by_server), ADD(flood_silent), ADD(retries), ADD(retried);
    ADD(retry_pending), ADD(retried_hearing);
    ADD(failed_idle), ADD(failovers), ADD(failed_over), ADD(failover_hearing), ADD(failover_down);
    ADD(failover_heard);
    for (size_t i = 0; i < 4; i++)
        ADD(hist_503[i]);
#undef ADD
    for (size_t i = 0; i < LOAD_FLOOD_CODES && src->flood_status[i].code != 0; i++)
        report_code_add(dst, src->flood_status[i].code, src->flood_status[i].n);
    if (src->max_503 > dst->max_503) dst->max_503 = src->max_503;
    if (src->flood_life_max_ms > dst->flood_life_max_ms)
        dst->flood_life_max_ms = src->flood_life_max_ms;
    if (src->stop_first_us > 0 &&
        (dst->stop_first_us == 0 || src->stop_first_us < dst->stop_first_us))
        dst->stop_first_us = src->stop_first_us;
    if (src->stop_last_us > dst->stop_last_us) dst->stop_last_us = src->stop_last_us;
    if (src->max_gap_ms > dst->max_gap_ms) dst->max_gap_ms = src->max_gap_ms;
    if (src->worst_pm < dst->worst_pm) dst->worst_pm = src->worst_pm;
    if (src->last_connect_errno != 0) dst->last_connect_errno = src->last_connect_errno;
    dst->bytes += src->bytes;
    dst->audio_bytes += src->audio_bytes;
    dst->pages += src->pages;
    dst->resyncs += src->resyncs;
    for (size_t i = 0; i < sizeof(dst->status) / sizeof(dst->status[0]); i++)
        dst->status[i] += src->status[i];
}

void report_code_add(struct load_counts *k, uint16_t code, uint32_t n)
{
    struct load_code_count *t = k->flood_status;
    size_t i = 0;

    while (i < LOAD_FLOOD_CODES && t[i].code != 0 && t[i].code < code)
        i++;
    if (i < LOAD_FLOOD_CODES && t[i].code == code) {
        t[i].n += n;
        return;
    }
    if (i == LOAD_FLOOD_CODES || t[LOAD_FLOOD_CODES - 1].code != 0) {
        k->flood_status_other += n;
        return;
    }
    memmove(t + i + 1, t + i, (LOAD_FLOOD_CODES - 1 - i) * sizeof(*t));
    t[i] = (struct load_code_count){.code = code, .n = n};
}

uint32_t report_failed(const struct load_counts *k)
{
    return k->failed_connect + k->failed_reset + k->failed_eof + k->failed_proto + k->failed_idle;
}

void report_progress(FILE *out, const struct load_opts *o, double t_s, const struct load_counts *k)
{
    fprintf(out, "t=%.0fs joined=%u warming=%u hearing=%u stalled=%u failed=%u refused=%u", t_s,
            k->joined, k->warming, k->hearing, k->stalled, report_failed(k), k->refused);
    if (o->attack.stop_reading > 0) fprintf(out, " stopped=%u", k->stopped);
    if (o->attack.flood > 0)
        fprintf(out, " flood_started=%u flood_open=%u flood_closed_by_server=%u", k->flood_started,
                k->flood_open, k->flood_closed_by_server);
    if (o->attack.retry != RETRY_NONE)
        fprintf(out, " retry_pending=%u retries=%u", k->retry_pending, k->retries);
    if (o->n_urls > 1)
        fprintf(out, " failed_over=%u failover_down=%u", k->failed_over, k->failover_down);
    fputc('\n', out);
    fflush(out);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted `v`. */
static double percentile_ms(const uint32_t *v, size_t n, double pct)
{
    size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);

    if (n == 0) return 0;
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1] / 1000.0;
}

static struct join_stats join_stats(uint32_t *joins, size_t n)
{
    struct join_stats j = {.n = n};

    qsort(joins, n, sizeof(*joins), cmp_u32);
    j.p50_ms = percentile_ms(joins, n, 50);
    j.p99_ms = percentile_ms(joins, n, 99);
    j.max_ms = n > 0 ? joins[n - 1] / 1000.0 : 0;
    return j;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted `v` (n > 0), microseconds to seconds. */
static double percentile_s(const int64_t *v, size_t n, double pct)
{
    size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);

    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return (double)v[rank - 1] / 1e6;
}

static struct loud_stats loud_stats(int64_t *loud, size_t n)
{
    struct loud_stats l = {.n = n};

    if (n == 0) return l;
    qsort(loud, n, sizeof(*loud), cmp_i64);
    l.first_s = (double)loud[0] / 1e6;
    l.p50_s = percentile_s(loud, n, 50);
    l.p99_s = percentile_s(loud, n, 99);
    l.last_s = (double)loud[n - 1] / 1e6;
    return l;
}

static double pct_of(uint32_t part, uint32_t whole)
{
    return whole > 0 ? 100.0 * part / whole : 0.0;
}

/* The stream's bitrate as received: audio page bodies over the audio time
 * they carried (bit/s), 0 before any audio was credited. */
static double measured_bps(const struct load_counts *k)
{
    return k->audio_samples > 0 ? k->audio_bytes * 8.0 * 48000.0 / (double)k->audio_samples : 0;
}

/* Lowest span ratio of any listener, in %, or -1 when none was judged. */
static double worst_pct(const struct load_counts *k)
{
    return k->worst_pm == LOAD_WORST_NONE ? -1.0 : k->worst_pm / 10.0;
}

static void print_refusals(FILE *out, const struct load_counts *k, bool is_json)
{
    const char *sep = "";

    for (int i = 0; i <= LOAD_STATUS_MAX - LOAD_STATUS_MIN; i++) {
        if (k->status[i] == 0) continue;
        if (is_json)
            fprintf(out, "%s\"%d\": %u", sep, i + LOAD_STATUS_MIN, k->status[i]);
        else
            fprintf(out, "%s%d x%u", sep, i + LOAD_STATUS_MIN, k->status[i]);
        sep = is_json ? ", " : ", ";
    }
    if (!is_json && *sep == '\0') fputs("none", out);
}

/* The flood's answers by status: "405 x300, 400 x2" or "none"; JSON:
 * "405": 300, "400": 2. */
static void print_flood_codes(FILE *out, const struct load_counts *k, bool is_json)
{
    const char *sep = "";

    for (size_t i = 0; i < LOAD_FLOOD_CODES && k->flood_status[i].code != 0; i++) {
        const struct load_code_count *c = &k->flood_status[i];
        fprintf(out, is_json ? "%s\"%u\": %u" : "%s%u x%u", sep, c->code, c->n);
        sep = ", ";
    }
    if (!is_json && *sep == '\0') fputs("none", out);
}

static uint32_t flood_answered_ok(const struct load_counts *k)
{
    uint32_t n = k->flood_status_other;

    for (size_t i = 0; i < LOAD_FLOOD_CODES; i++)
        n += k->flood_status[i].n;
    return n;
}

static void print_flood_text(FILE *out, const struct load_opts *o, const struct load_counts *k)
{
    const struct load_attack *a = &o->attack;
    uint32_t addrs = attack_flood_addrs(o);

    fprintf(
        out,
        "  flood       %s from %u source address%s: %u asked, %u started, %u open, %u closed by "
        "the server, %u answered, %u failed to connect, %u still connecting\n",
        attack_flood_mode_name(a->flood_mode), addrs, addrs == 1 ? "" : "es", a->flood,
        k->flood_started, k->flood_open, k->flood_closed_by_server, k->flood_answered,
        k->flood_failed_connect, k->flood_connecting);
    fprintf(out, "  flood ends  answered %u (", flood_answered_ok(k));
    print_flood_codes(out, k, false);
    if (k->flood_status_other > 0) fprintf(out, ", other codes x%u", k->flood_status_other);
    fprintf(out,
            "), bad answer %u, closed without answer %u, reset by the server %u, reset by us %u,"
            " waiting %u\n",
            k->flood_bad_answer, k->flood_silent, k->flood_reset_by_server, k->flood_reset_sent,
            k->flood_waiting);
}

static void print_retry_text(FILE *out, const struct load_opts *o, const struct load_counts *k)
{
    fprintf(out,
            "  retry       %s: %u listeners retried (%u attempts), %u waiting to retry, %u hearing "
            "after retrying\n",
            retry_mode_name(o->attack.retry), k->retried, k->retries, k->retry_pending,
            k->retried_hearing);
    fprintf(out,
            "  503 runs    max %u consecutive; listeners by longest run: 1 x%u, 2 x%u, 3 x%u,"
            " >3 x%u\n",
            k->max_503, k->hist_503[0], k->hist_503[1], k->hist_503[2], k->hist_503[3]);
}

/* The attack modes' figures, when a mode was used. */
static void print_attack_text(FILE *out, const struct load_opts *o, const struct load_counts *k)
{
    const struct load_attack *a = &o->attack;

    if (a->stop_reading > 0)
        fprintf(out,
                "  stopped     %u now, %u ever of %u asked, after %.1f s of audio (first at "
                "t=%.2fs, last at t=%.2fs)\n",
                k->stopped, k->stopped_ever, a->stop_reading, a->stop_after_ms / 1000.0,
                k->stop_first_us / 1e6, k->stop_last_us / 1e6);
    if (a->flood > 0) print_flood_text(out, o, k);
    if (a->retry != RETRY_NONE || k->max_503 > 0) print_retry_text(out, o, k);
}

/* --failover: the URLs, and what became of the listeners whose stream died. */
static void print_failover_text(FILE *out, const struct report_run *r, const struct load_counts *k,
                                const struct join_stats *f)
{
    const struct load_opts *o = r->o;

    if (o->n_urls <= 1) return;
    fputs("  failover    to", out);
    for (uint32_t u = 1; u < o->n_urls; u++)
        fprintf(out, "%s %s", u > 1 ? "," : "", r->t[u].url);
    fprintf(out, " (idle cut %.1f s)\n", o->failover_idle_ms / 1000.0);
    fprintf(out,
            "  failed over %u listeners (%u moves to a next URL): heard again %u (a span meeting "
            "the bar since), hearing now %u, between streams %u\n",
            k->failed_over, k->failovers, k->failover_heard, k->failover_hearing, k->failover_down);
    fprintf(out,
            "  death to audio ms  p50 %.1f  p99 %.1f  max %.1f  (over %zu outages that ended)\n",
            f->p50_ms, f->p99_ms, f->max_ms, f->n);
}

/* One line, with --loud-bytes: when sound reached the listeners. */
static void print_loud_text(FILE *out, const struct load_opts *o, const struct loud_stats *l)
{
    if (o->loud_bytes == 0) return;
    fprintf(out, "  loud        %zu of %u listeners saw a packet over %u bytes", l->n, o->listeners,
            o->loud_bytes);
    if (l->n > 0)
        fprintf(out, ": first %.6f  p50 %.6f (+%.3f s)  p99 %.6f (+%.3f s)  last %.6f (unix s)",
                l->first_s, l->p50_s, l->p50_s - l->first_s, l->p99_s, l->p99_s - l->first_s,
                l->last_s);
    fputc('\n', out);
}

static void print_text(FILE *out, const struct report_run *r, const struct load_counts *k,
                       const struct join_stats *j, const struct join_stats *f,
                       const struct loud_stats *l)
{
    const struct load_opts *o = r->o;

    fprintf(out, "tribune-load: %s\n", r->t->url);
    fprintf(out,
            "  target      %u listeners at %.0f joins/s, %u s, %u processes, %u source addrs\n",
            o->listeners, o->joins_per_s, o->duration_s, o->procs, o->src_addrs);
    fprintf(out, "  joined      %u (connected %u, streaming %u, still connecting %u)\n", k->joined,
            k->connected, k->streaming, k->connecting);
    fprintf(out, "  hearing     %u of %u (%.2f %%), hearing now %u, warming %u, waiting %u\n",
            k->hearing_clean, o->listeners, pct_of(k->hearing_clean, o->listeners), k->hearing,
            k->warming, k->waiting);
    fprintf(out,
            "  stalled     %u now, %u ever (judged %u; worst span %.1f %% of real time,"
            " %u under %u %%; gap over %u ms counts too)\n",
            k->stalled, k->ever_stalled, k->judged, worst_pct(k), k->spans_low, o->min_pct,
            o->max_gap_ms);
    fprintf(out, "  skipped     %u listeners, %u skips (page sequence or granule jumps)\n",
            k->ever_skipped, k->skips);
    fprintf(out, "  failed      %u (connect %u, reset %u, closed early %u, bad data %u, idle %u)\n",
            report_failed(k), k->failed_connect, k->failed_reset, k->failed_eof, k->failed_proto,
            k->failed_idle);
    if (k->failed_connect > 0)
        fprintf(out, "  last connect error: %s\n", strerror(k->last_connect_errno));
    fprintf(out, "  refused     %u (", k->refused);
    print_refusals(out, k, false);
    fprintf(out, ")\n  join ms     p50 %.1f  p99 %.1f  max %.1f  (over %zu with audio)\n",
            j->p50_ms, j->p99_ms, j->max_ms, j->n);
    print_loud_text(out, o, l);
    fprintf(out, "  bytes       %llu (audio bodies %llu, pages %llu, resyncs %llu)\n",
            (unsigned long long)k->bytes, (unsigned long long)k->audio_bytes,
            (unsigned long long)k->pages, (unsigned long long)k->resyncs);
    fprintf(out, "  bitrate     %.1f kbit/s measured (audio bodies over audio time received)\n",
            measured_bps(k) / 1000.0);
    fprintf(out, "  max gap ms  %u\n  duration    %.1f s%s\n", k->max_gap_ms, r->duration_s,
            r->workers_lost > 0 ? " (some workers lost)" : "");
    print_attack_text(out, o, k);
    print_failover_text(out, r, k, f);
}

/* Writes `s` as a JSON string (URLs and paths are ASCII; escape the rest). */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void print_flood_json(FILE *out, const struct load_opts *o, const struct load_counts *k)
{
    fprintf(out, "  \"flood_mode\": \"%s\",\n  \"flood_addrs\": %u,\n  \"flood_by_status\": {",
            attack_flood_mode_name(o->attack.flood_mode), attack_flood_addrs(o));
    print_flood_codes(out, k, true);
    fprintf(out,
            "},\n  \"flood_status_other\": %u,\n  \"flood_answered_status\": %u,\n"
            "  \"flood_bad_answer\": %u,\n  \"flood_closed_silent\": %u,\n"
            "  \"flood_reset_by_server\": %u,\n  \"flood_reset_sent\": %u,\n"
            "  \"flood_waiting\": %u,\n",
            k->flood_status_other, flood_answered_ok(k), k->flood_bad_answer, k->flood_silent,
            k->flood_reset_by_server, k->flood_reset_sent, k->flood_waiting);
}

static void print_retry_json(FILE *out, const struct load_opts *o, const struct load_counts *k)
{
    fprintf(out,
            "  \"retry\": \"%s\",\n  \"retried\": %u,\n  \"retries\": %u,\n"
            "  \"retry_pending\": %u,\n  \"retried_hearing\": %u,\n"
            "  \"consecutive_503\": {\"max\": %u, \"1\": %u, \"2\": %u, \"3\": %u, \">3\": %u},\n",
            retry_mode_name(o->attack.retry), k->retried, k->retries, k->retry_pending,
            k->retried_hearing, k->max_503, k->hist_503[0], k->hist_503[1], k->hist_503[2],
            k->hist_503[3]);
}

/* A unix time in seconds with microseconds, or null. */
static void json_time(FILE *out, const char *name, bool is_set, double s)
{
    if (is_set)
        fprintf(out, "\"%s\": %.6f", name, s);
    else
        fprintf(out, "\"%s\": null", name);
}

static void print_loud_json(FILE *out, const struct load_opts *o, const struct loud_stats *l)
{
    fprintf(out, "  \"loud_bytes\": %u,\n  \"loud\": {\"listeners\": %zu, ", o->loud_bytes, l->n);
    json_time(out, "first_unix", l->n > 0, l->first_s);
    fputs(", ", out);
    json_time(out, "p50_unix", l->n > 0, l->p50_s);
    fputs(", ", out);
    json_time(out, "p99_unix", l->n > 0, l->p99_s);
    fputs(", ", out);
    json_time(out, "last_unix", l->n > 0, l->last_s);
    fputs("},\n", out);
}

/* --failover's figures (present, zero, without it). */
static void print_failover_json(FILE *out, const struct report_run *r, const struct load_counts *k,
                                const struct join_stats *f)
{
    fputs("  \"failover_urls\": [", out);
    for (uint32_t u = 1; u < r->o->n_urls; u++) {
        if (u > 1) fputs(", ", out);
        json_string(out, r->t[u].url);
    }
    fprintf(out,
            "],\n  \"failover_idle_s\": %.1f,\n  \"failovers\": %u,\n  \"failed_over\": %u,\n"
            "  \"failover_heard\": %u,\n  \"failover_hearing\": %u,\n  \"failover_down\": %u,\n"
            "  \"failover_ms\": {\"n\": %zu, \"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f},\n",
            r->o->failover_idle_ms / 1000.0, k->failovers, k->failed_over, k->failover_heard,
            k->failover_hearing, k->failover_down, f->n, f->p50_ms, f->p99_ms, f->max_ms);
}

static void print_json(FILE *out, const struct report_run *r, const struct load_counts *k,
                       const struct join_stats *j, const struct join_stats *f,
                       const struct loud_stats *l)
{
    const struct load_opts *o = r->o;

    fputs("{\n  \"url\": ", out);
    json_string(out, r->t->url);
    fprintf(out,
            ",\n  \"target\": %u,\n  \"joins_per_s\": %.1f,\n  \"processes\": %u,\n"
            "  \"src_addrs\": %u,\n  \"warmup_s\": %.1f,\n"
            "  \"rule\": {\"span_s\": 1, \"min_pct\": %u, \"max_gap_ms\": %u},\n"
            "  \"joined\": %u,\n  \"connected\": %u,\n  \"streaming\": %u,\n"
            "  \"got_audio\": %u,\n  \"hearing\": %u,\n  \"hearing_pct\": %.3f,\n"
            "  \"hearing_now\": %u,\n  \"warming\": %u,\n  \"waiting\": %u,\n"
            "  \"stalled\": %u,\n  \"ever_stalled\": %u,\n",
            o->listeners, o->joins_per_s, o->procs, o->src_addrs, o->warmup_ms / 1000.0, o->min_pct,
            o->max_gap_ms, k->joined, k->connected, k->streaming, k->got_audio, k->hearing_clean,
            pct_of(k->hearing_clean, o->listeners), k->hearing, k->warming, k->waiting, k->stalled,
            k->ever_stalled);
    fprintf(out,
            "  \"failed\": %u,\n  \"failed_by_kind\": {\"connect\": %u, \"reset\": %u, "
            "\"closed_early\": %u, \"bad_data\": %u, \"idle\": %u},\n  \"refused\": %u,\n"
            "  \"refused_by_status\": {",
            report_failed(k), k->failed_connect, k->failed_reset, k->failed_eof, k->failed_proto,
            k->failed_idle, k->refused);
    print_refusals(out, k, true);
    fprintf(out,
            "},\n  \"judged\": %u,\n  \"spans_low\": %u,\n  \"worst_span_pct\": %.1f,\n"
            "  \"ever_skipped\": %u,\n  \"skips\": %u,\n  \"bitrate_measured\": %.0f",
            k->judged, k->spans_low, worst_pct(k), k->ever_skipped, k->skips, measured_bps(k));
    fprintf(out,
            ",\n  \"join_ms\": {\"n\": %zu, \"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f},\n"
            "  \"bytes\": %llu,\n  \"audio_bytes\": %llu,\n  \"pages\": %llu,\n"
            "  \"resyncs\": %llu,\n  \"max_gap_ms\": %u,\n  \"duration_s\": %.2f,\n",
            j->n, j->p50_ms, j->p99_ms, j->max_ms, (unsigned long long)k->bytes,
            (unsigned long long)k->audio_bytes, (unsigned long long)k->pages,
            (unsigned long long)k->resyncs, k->max_gap_ms, r->duration_s);
    fprintf(out,
            "  \"stop_reading\": %u,\n  \"stop_after_s\": %.1f,\n  \"stopped\": %u,\n"
            "  \"stopped_ever\": %u,\n  \"stopped_first_s\": %.3f,\n  \"stopped_last_s\": %.3f,\n",
            o->attack.stop_reading, o->attack.stop_after_ms / 1000.0, k->stopped, k->stopped_ever,
            k->stop_first_us / 1e6, k->stop_last_us / 1e6);
    fprintf(out,
            "  \"flood\": %u,\n  \"flood_rate\": %.1f,\n  \"flood_start_s\": %.1f,\n"
            "  \"flood_trickle_ms\": %u,\n  \"flood_started\": %u,\n  \"flood_open\": %u,\n"
            "  \"flood_closed_by_server\": %u,\n  \"flood_answered\": %u,\n"
            "  \"flood_failed_connect\": %u,\n  \"flood_connecting\": %u,\n"
            "  \"flood_life_max_ms\": %u,\n",
            o->attack.flood, o->attack.flood_rate, o->attack.flood_start_ms / 1000.0,
            o->attack.flood_trickle_ms, k->flood_started, k->flood_open, k->flood_closed_by_server,
            k->flood_answered, k->flood_failed_connect, k->flood_connecting, k->flood_life_max_ms);
    print_flood_json(out, o, k);
    print_retry_json(out, o, k);
    print_failover_json(out, r, k, f);
    print_loud_json(out, o, l);
    fprintf(out, "  \"workers_lost\": %u\n}\n", r->workers_lost);
}

int report_final(FILE *out, const struct report_run *run, const struct load_counts *k,
                 uint32_t *joins, size_t n)
{
    struct join_stats j = join_stats(joins, n);
    struct join_stats fo = join_stats(run->failover_us, run->n_failover);
    struct loud_stats l = loud_stats(run->loud_us, run->n_loud);
    FILE *f;

    print_text(out, run, k, &j, &fo, &l);
    fflush(out);
    if (run->o->json_path == NULL) return 0;
    f = fopen(run->o->json_path, "w");
    if (f == NULL) return -errno;
    print_json(f, run, k, &j, &fo, &l);
    return fclose(f) == 0 ? 0 : -errno;
}
