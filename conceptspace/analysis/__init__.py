"""The analysis layer: everything derived from tracker rows, one module per job.

    stats       rows -> per-(readout, method, setting, step, cell) counts (CellStat)
    curves      accuracy curves as counts, the paper's smoothing, Wilson intervals
    times       learning times (paper / notebook rules), training convergence, turns
    lead        the elicitation lead: split-half (headline) and max-over-settings (the paper's)
    claims      one metric per claim of the paper (F1-F4)
    rundir      one run dir -> its summary (the only reader of a run's files)
    conditions  runs that differ only by seed -> per-condition statistics and verdicts
    figures     the figures (matplotlib)
    html        HTML helpers shared by the pages
    report      `conceptspace report RUN_DIR`
    aggregate   `conceptspace aggregate SWEEP_DIR`
"""
