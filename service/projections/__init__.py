"""Read models derived from the event log: written inline with each append, rebuildable at any time."""
