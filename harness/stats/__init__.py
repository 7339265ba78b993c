"""Statistics for evidence-grade results: one home for every interval, test and sample-size rule.

- intervals: binomial confidence intervals (Wilson, Clopper–Pearson, Jeffreys) through statsmodels.
- clustered: a seeded patient-cluster bootstrap of a proportion's design effect, and the cluster-adjusted interval.
- auc: ROC AUC with a DeLong interval.
- paired: the exact McNemar test on paired outcomes, with the discordant counts.
- multiplicity: Holm's step-down adjustment of the confidence level of several bounds.
- decidability: whether a bound criterion can be decided with n images, and the smallest n at which it can.
- chance: whether a count of images exceeds what a tolerated rate explains (one-sided exact binomial test).

Nothing here knows about plans or results files; harness.results.uncertainty applies it to a run.
"""
