#include "media/level.h"

#include <math.h>
#include <string.h>

void level_init(struct level *lv)
{
    memset(lv, 0, sizeof(*lv));
    lv->dbfs = LEVEL_FLOOR_DBFS;
}

static float mean_square(const float *x, size_t n)
{
    if (!x || n == 0) return 0.0f;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    float ms = (float)(sum / (double)n);
    return ms <= 1e9f ? ms : 0.0f; /* NaN or absurd input counts as silence */
}

/* A sum over the ring each frame (15 additions) rather than a running sum: no drift from
 * float rounding, and the cost is nothing next to the frame's 960 multiplications. */
void level_add(struct level *lv, const float *x, size_t n)
{
    lv->energy[lv->pos] = mean_square(x, n);
    lv->pos = (lv->pos + 1) % LEVEL_FRAMES;
    double sum = 0;
    for (int i = 0; i < LEVEL_FRAMES; i++)
        sum += lv->energy[i];
    double mean = sum / LEVEL_FRAMES;
    lv->dbfs = mean > 1e-12 ? (float)(10.0 * log10(mean)) : LEVEL_FLOOR_DBFS;
    if (lv->dbfs >= LEVEL_TALKING_DBFS) {
        lv->is_talking = true;
        lv->hold = LEVEL_HOLD_FRAMES;
    } else if (lv->hold > 0) {
        lv->hold--;
    } else {
        lv->is_talking = false;
    }
}
