/* Intrusive doubly-linked lists (circular, with a sentinel head).
 *
 *   head <-> a <-> b <-> c <-> head
 *
 * A node is embedded in the object that lives on the list; `list_entry` gets the
 * object back. A node that is on no list points at itself (list_init), so
 * `list_remove` on an unlinked node is harmless. No allocation, O(1) everything.
 */
#ifndef TRIBUNE_CORE_LIST_H
#define TRIBUNE_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
    struct list *prev, *next;
};

#define list_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

static inline void list_init(struct list *l)
{
    l->prev = l->next = l;
}

static inline bool list_is_empty(const struct list *l)
{
    return l->next == l;
}

/* Inserts `n` before `at` (at the tail when `at` is the head). */
static inline void list_insert_before(struct list *at, struct list *n)
{
    n->prev = at->prev;
    n->next = at;
    at->prev->next = n;
    at->prev = n;
}

static inline void list_push_back(struct list *head, struct list *n)
{
    list_insert_before(head, n);
}

/* Unlinks `n` and leaves it pointing at itself. */
static inline void list_remove(struct list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define list_for_each_safe(pos, tmp, head)                                                         \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
