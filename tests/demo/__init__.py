"""`make demo`: the 464XLAT lab with clat-eamt on its router, real traffic, a report.

run.py builds and tears down, plan.py says what is visited, workload.py makes the traffic,
state.py reads the daemon (its CLI), report.py judges from what the servers logged.
"""
