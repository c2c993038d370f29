"""The analysis layer: everything derived from tracker rows, one module per job.

    stats           rows -> per-(readout, method, setting, step, cell) counts (CellStat)
    curves          accuracy curves as counts, the paper's smoothing, Wilson intervals
    times           learning times (paper / notebook rules), training convergence, turns
    lead            the elicitation lead: split-half (headline) and max-over-settings (the paper's)
    claims          one metric per claim of the paper (F1-F4)
    rundir          one run dir -> its summary (the only reader of a run's files)
    conditions      runs that differ only by seed -> per-condition statistics and verdicts
    figures         the figures' shared basics (matplotlib setup, colours, helpers, output, samples.gif)
    run_figures     one run's figures: concept space, accuracy, elicitation, probe-sample strip
    sweep_figures   many runs' figures: the hidden-capability panel, trajectories per condition
    claim_figures   the figures of claims F1 (learning time vs Δ) and F4 (distance vs learning time)
    html            HTML helpers shared by the pages
    report          `conceptspace report RUN_DIR`
    aggregate       `conceptspace aggregate SWEEP_DIR`
"""
