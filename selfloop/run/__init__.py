"""The durable run directory: layout, manifest, phases, atomic writes, resume rules, preemption, metrics log
and the stacking queue. Every path of a run comes from ``RunDirectory``."""
