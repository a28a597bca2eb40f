"""The guard's figures at the short scale (issue 5, "Figures to reach"; guard_figures.py has the
scenarios and both scales, `make bench` runs the long one through bench/guard.sh):

  flood      1,000 listeners keep >= 99.9 % hearing through 4 s of 2,000 connections/s from 400
             addresses; the server's refusal counters match what the attacker saw within 1 %.
  slowloris  3,000 slow-loris connections: 500 listeners 100 % hearing, >= 99 % of 30 joins/s get
             audio within 3 s (p99), each slow connection closed within the 3 s deadline + 1 s.
  zerowin    200 of 1,000 listeners stop reading: the rest >= 99.9 % hearing, each stopped reader
             dropped within the 5 s stall timeout + 5 s, server memory bounded.
  fdlimit    1,024 descriptors, one worker, 2,000 slow connections: server CPU < 10 % of a core
             while they sit, 100 listeners fine, a publisher connects and is heard.
  restart    1,000 listeners, the server killed and restarted with --join_rate 200: >= 99 % hearing
             again within 30 s, admissions never over the rate, at most 3 consecutive 503s each.
Each prints the figures it measured, from tribune-load and from the server.
"""
import heavy
import guard_figures
from lib import run_test


def main():
    with heavy.exclusive("test_guard_figures"):
        guard_figures.run("short")


if __name__ == "__main__":
    run_test(main)
