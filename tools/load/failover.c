/* Which URL a listener goes to next; see failover.h. */
#include "failover.h"

#include "client.h"

uint32_t failover_url(uint32_t index, uint32_t pos, uint32_t n_urls)
{
    if (n_urls <= 1) return 0;
    pos %= n_urls;
    if (pos == 0) return 0;
    return 1 + (index + pos - 1) % (n_urls - 1);
}

bool failover_is_death(int reason, uint32_t status)
{
    switch (reason) {
    case CLOSE_CONNECT:
    case CLOSE_RESET:
    case CLOSE_EOF:
    case CLOSE_IDLE:
        return true;
    case CLOSE_REFUSED:
        return status >= 500 && status <= 599;
    default:
        return false;
    }
}
