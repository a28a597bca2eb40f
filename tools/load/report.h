/* The run's results: summing workers' counts, the live progress line, and the
 * final report as text and as JSON.
 *
 * Contract: report_add() sums `src` into `dst` (max_gap_ms and max_503 take
 * the maximum).
 * report_final() sorts `joins` (microseconds, n of them), run->failover_us and
 * run->loud_us in place to find the percentiles, prints the text report to `out` and, if
 * `json_path` is set, writes the JSON report there; returns 0 or -errno if the
 * JSON file could not be written (the text report is printed regardless).
 */
#ifndef TRIBUNE_TOOLS_LOAD_REPORT_H
#define TRIBUNE_TOOLS_LOAD_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "load.h"

struct report_run {
    const struct load_opts *o;
    const struct load_target *t; /* o->n_urls of them: the positional URL, then --failover's */
    double duration_s;           /* measured, start to final counts */
    uint32_t workers_lost;       /* workers that never sent final counts */
    int64_t *loud_us; /* --loud-bytes: first loud page per listener that saw one, unix us */
    size_t n_loud;
    uint32_t *failover_us; /* --failover: times from a stream's death to audio again, us */
    size_t n_failover;
};

void report_add(struct load_counts *dst, const struct load_counts *src);
/* Counts `n` flood answers with status `code` in k->flood_status (kept sorted
 * by code; a code that finds no free slot goes to flood_status_other). */
void report_code_add(struct load_counts *k, uint16_t code, uint32_t n);
uint32_t report_failed(const struct load_counts *k);
/* The progress line; attack modes in use add their fields (stopped=, flood_*=,
 * retry_*=). */
void report_progress(FILE *out, const struct load_opts *o, double t_s, const struct load_counts *k);
int report_final(FILE *out, const struct report_run *run, const struct load_counts *k,
                 uint32_t *joins, size_t n);

#endif
