#!/usr/bin/env python3
"""CPU and memory of a server's whole process tree, read from /proc.

  procstat.py snap PID            one JSON line: the tree's CPU-seconds (utime+stime of
                                  every process under PID, threads included), RSS, the
                                  kernel's TCP buffer memory (/proc/net/sockstat "mem"
                                  pages) and socket slab memory (/proc/slabinfo); the
                                  last two are system-wide
  procstat.py watch PID OUT [S]   one JSON line per second into OUT until PID is gone
                                  or S seconds have passed (for the plots and the docs)

The tree is found from /proc/*/stat parent links at every read, so worker processes
that a master forks or restarts are counted too. Standard library only.
"""
import json
import os
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def read_stat(pid):
    """(ppid, utime+stime in ticks, rss pages, comm) of one process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1 : s.rindex(")")]
    rest = s[s.rindex(")") + 2 :].split()
    # fields after comm: state(0) ppid(1) ... utime(11) stime(12) ... rss(21)
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[21]), comm


def tree(root):
    """Every live process whose ancestry reaches `root` (root included)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                stats[int(name)] = st
    children = {}
    for pid, st in stats.items():
        children.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out.append((pid, stats[pid]))
            todo.extend(children.get(pid, []))
    return out


def sockstat():
    """Kernel TCP memory in KiB (sockstat 'TCP: ... mem N', in pages), and sockets in use."""
    tcp_mem = inuse = 0
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    parts = line.split()
                    kv = dict(zip(parts[1::2], parts[2::2]))
                    tcp_mem = int(kv.get("mem", 0)) * PAGE // 1024
                    inuse = int(kv.get("inuse", 0))
    except OSError:
        pass
    return tcp_mem, inuse


# Slab caches that grow with each open TCP socket: the socket, its inode, its file
# and dentry, the epoll entry, queued skb heads. About 3.7 KB per socket here.
SOCKET_SLABS = ("TCP", "TCPv6", "sock_inode_cache", "filp", "dentry", "eventpoll_epi",
                "skbuff_head_cache", "skbuff_small_head", "request_sock_TCP")


def socket_slab_kb():
    """KiB of the SOCKET_SLABS in use, system-wide (needs root; 0 otherwise)."""
    total = 0
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in SOCKET_SLABS:
                    total += int(parts[1]) * int(parts[3])
    except (OSError, ValueError, IndexError):
        return 0
    return total // 1024


def snap(root):
    procs = tree(root)
    tcp_kb, inuse = sockstat()
    return {
        "t": round(time.time(), 3),
        "procs": len(procs),
        "cpu_s": round(sum(st[1] for _, st in procs) / CLK, 3),
        "rss_kb": sum(st[2] for _, st in procs) * PAGE // 1024,
        "tcp_mem_kb": tcp_kb,
        "slab_kb": socket_slab_kb(),
        "tcp_inuse": inuse,
    }


def main(argv):
    if len(argv) >= 3 and argv[1] == "snap":
        print(json.dumps(snap(int(argv[2]))))
        return 0
    if len(argv) >= 4 and argv[1] == "watch":
        root, limit = int(argv[2]), float(argv[4]) if len(argv) > 4 else 3600
        end = time.time() + limit
        with open(argv[3], "w") as out:
            while time.time() < end and os.path.exists(f"/proc/{root}"):
                out.write(json.dumps(snap(root)) + "\n")
                out.flush()
                time.sleep(1)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
