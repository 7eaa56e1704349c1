"""The scheduler interface: ``sched_*`` calls and ``SCHED_*`` policies.

Section "Interface to the scheduler" of the :mod:`os` documentation."""

from os import (
    SCHED_BATCH as SCHED_BATCH,
    SCHED_FIFO as SCHED_FIFO,
    SCHED_IDLE as SCHED_IDLE,
    SCHED_OTHER as SCHED_OTHER,
    SCHED_RESET_ON_FORK as SCHED_RESET_ON_FORK,
    SCHED_RR as SCHED_RR,
    sched_get_priority_max as sched_get_priority_max,
    sched_get_priority_min as sched_get_priority_min,
    sched_getaffinity as sched_getaffinity,
    sched_getparam as sched_getparam,
    sched_getscheduler as sched_getscheduler,
    sched_param as sched_param,
    sched_rr_get_interval as sched_rr_get_interval,
    sched_setaffinity as sched_setaffinity,
    sched_setparam as sched_setparam,
    sched_setscheduler as sched_setscheduler,
    sched_yield as sched_yield,
)
