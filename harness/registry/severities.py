"""The five severity levels of a natural corruption (defined without torch, so results and reports can use them)."""

SEVERITY_LEVELS = (1, 2, 3, 4, 5)  # 1 = slightest, 5 = most harmful
