"""What a run prints: Lightning's per-phase banners silenced (``quiet``), a line per phase with the run's ETA
(``progress``), the per-generation table and the next commands at the end (``summary``)."""
