"""``qualbench-report DIR...``: leaderboard, per-domain/type tables, plots, paired comparisons, one HTML page."""
